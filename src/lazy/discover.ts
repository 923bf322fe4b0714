/**
 * Finding the lazy index `vmimg index push` published for an image manifest (docs/FORMAT.md "Published
 * lazy index"): the registry's referrers API (`GET /v2/NAME/referrers/DIGEST?artifactType=…`), and
 * when that answers 404 (distribution 2.8.2) the spec's fallback tag `sha256-<hex>`. The artifact
 * manifest is fetched by digest (so verified) and must name the image manifest as its `subject`.
 */
import { ErrorCode, isVmimgError } from '../errors.js';
import { documentLimits } from '../manifest/limits.js';
import type { Descriptor } from '../manifest/types.js';
import type { CallOptions, RegistryClient } from '../registry/client.js';
import type { Reference } from '../reference/types.js';
import { descriptorsOf, fallbackTag } from '../manifest/referrers.js';
import { ARTIFACT_TYPE, IDX_MEDIA_TYPE, LAYER_ANNOTATION, ZRAN_MEDIA_TYPE, readFallback } from './publish.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** The blobs a published index holds for one layer (by compressed digest). */
export interface PublishedLayer {
  idx: Descriptor;
  /** Absent for layers under 10 MiB and non-gzip ones: those are fetched whole. */
  zran?: Descriptor;
}

/** A published lazy index: the artifact's descriptor, where it was found, and its blobs by layer digest. */
export interface PublishedIndex {
  artifact: Descriptor;
  via: 'referrers-api' | 'tag-fallback';
  layers: Map<string, PublishedLayer>;
}

/** The artifacts that may be lazy indexes of one image manifest, newest first, and where they were listed. */
export interface PublishedCandidates {
  list: Descriptor[];
  via: PublishedIndex['via'];
}

/**
 * The lazy-index artifacts listed for `subjectDigest` in `repo` (one request, two when the referrers API
 * answers 404), newest first, at most `limits.maxReferrerCandidates` distinct digests. A list that is
 * not JSON, or entries that are not descriptors, count as no entries (anyone with push rights can write
 * the fallback tag). Errors: the client's coded ones.
 */
export async function listPublishedIndexes(client: RegistryClient, repo: Reference, subjectDigest: string, call: CallOptions = {}): Promise<PublishedCandidates> {
  const listed = await referrers(client, repo, subjectDigest, call);
  // reversed first: entries without `created` (older vmimg) keep the fallback list's order, where a push appends
  const ours = listed.list.filter((d) => d.artifactType === ARTIFACT_TYPE).reverse();
  return { list: distinct(ours.sort(newestFirst)).slice(0, documentLimits().maxReferrerCandidates), via: listed.via };
}

/**
 * Candidate `artifact` fetched by digest and parsed, or undefined when it is gone, is not vmimg's, or
 * names another subject (skipped, not trusted). Errors: the client's coded ones.
 */
export async function loadPublishedIndex(client: RegistryClient, repo: Reference, subjectDigest: string, artifact: Descriptor, via: PublishedIndex['via'], call: CallOptions = {}): Promise<PublishedIndex | undefined> {
  const m = await client.fetchManifest({ registry: repo.registry, repository: repo.repository, digest: artifact.digest }, call).catch((err: unknown) => {
    if (isVmimgError(err, ErrorCode.NOT_FOUND)) return undefined; // listed but deleted since
    throw err;
  });
  if (m === undefined) return undefined;
  const layers = parseArtifact(m.bytes, subjectDigest);
  return layers !== undefined ? { artifact: { ...artifact, digest: m.digest, size: m.size }, via, layers } : undefined;
}

/**
 * The newest lazy index published for `subjectDigest` in `repo`, or undefined when there is none.
 * Errors: the client's coded ones (ERR_REGISTRY_UNAVAILABLE, ERR_UNAUTHORIZED, …).
 */
export async function findPublishedIndex(client: RegistryClient, repo: Reference, subjectDigest: string, call: CallOptions = {}): Promise<PublishedIndex | undefined> {
  const { list, via } = await listPublishedIndexes(client, repo, subjectDigest, call);
  for (const artifact of list) {
    const found = await loadPublishedIndex(client, repo, subjectDigest, artifact, via, call);
    if (found !== undefined) return found;
  }
  return undefined;
}

async function referrers(client: RegistryClient, repo: Reference, digest: string, call: CallOptions): Promise<{ list: Descriptor[]; via: PublishedIndex['via'] }> {
  try {
    const answer = await client.fetchApi(repo, `referrers/${digest}?artifactType=${encodeURIComponent(ARTIFACT_TYPE)}`, { accept: OCI_INDEX, ...call });
    return { list: descriptorsOf(answer.bytes), via: 'referrers-api' };
  } catch (err) {
    if (!isVmimgError(err, ErrorCode.NOT_FOUND)) throw err; // the spec: 404 means "use the tag schema"
  }
  return { list: await readFallback(client, repo, fallbackTag(digest), call), via: 'tag-fallback' };
}

/** The first descriptor of each digest (a hostile list may repeat one thousands of times). */
function distinct(list: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return list.filter((d) => !seen.has(d.digest) && seen.add(d.digest) !== undefined);
}

/** Newest first by the creation annotation the publisher sets (descriptors without one last; a stable sort keeps their order). */
function newestFirst(a: Descriptor, b: Descriptor): number {
  const ta = a.annotations?.['org.opencontainers.image.created'] ?? '';
  const tb = b.annotations?.['org.opencontainers.image.created'] ?? '';
  return tb < ta ? -1 : tb > ta ? 1 : 0;
}

/** The artifact's blobs by layer digest, or undefined when it is not a vmimg lazy index for `subject`. */
export function parseArtifact(bytes: Buffer, subject: string): Map<string, PublishedLayer> | undefined {
  let doc: { artifactType?: unknown; subject?: { digest?: unknown }; layers?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch {
    return undefined;
  }
  if (doc.artifactType !== ARTIFACT_TYPE || doc.subject?.digest !== subject || !Array.isArray(doc.layers)) return undefined;
  const found = new Map<string, Partial<PublishedLayer>>();
  for (const d of doc.layers as Descriptor[]) {
    const layer = d?.annotations?.[LAYER_ANNOTATION];
    if (typeof layer !== 'string' || typeof d.digest !== 'string' || !Number.isSafeInteger(d.size)) continue;
    const entry = found.get(layer) ?? {};
    if (d.mediaType === IDX_MEDIA_TYPE) entry.idx = d;
    else if (d.mediaType === ZRAN_MEDIA_TYPE) entry.zran = d;
    found.set(layer, entry);
  }
  const layers = new Map<string, PublishedLayer>();
  for (const [k, v] of found) if (v.idx !== undefined) layers.set(k, v as PublishedLayer);
  return layers;
}
