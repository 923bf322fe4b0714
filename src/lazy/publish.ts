/**
 * `vmimg index push`: publishes an image's per-layer `.idx` (version 2) and `.zran` blobs next to it in
 * its repository, as one OCI artifact manifest whose `subject` is the image manifest (distribution-spec
 * v1.1 referrers). Discovery: the referrers API when the registry has one, else the spec's tag fallback
 * (`sha256-<hex>` tagging an image index of referrers), updated read-modify-write and checked by reading
 * it back (distribution 2.8.2, Debian's registry, has only the fallback).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCode, VmimgError, isVmimgError } from '../errors.js';
import type { Descriptor } from '../manifest/types.js';
import { descriptorsOf, fallbackTag } from '../manifest/referrers.js';
import { RegistrySink } from '../push/sinks.js';
import { RegistryClient, type CallOptions, type RegistryClientOptions } from '../registry/client.js';
import type { Reference } from '../reference/types.js';
import { HEADER_SIZE, encodeHeader, scanIndex } from '../layer/index-format.js';
import { zranPath } from './build.js';

/** The artifact type of a published lazy index, and the media types of its blobs. */
export const ARTIFACT_TYPE = 'application/vnd.vmimg.lazy-index.v1';
export const IDX_MEDIA_TYPE = 'application/vnd.vmimg.layer.idx.v2';
export const ZRAN_MEDIA_TYPE = 'application/vnd.vmimg.layer.zran.v1';
/** The annotation naming the compressed layer digest a blob describes. */
export const LAYER_ANNOTATION = 'dev.vmimg.layer.digest';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = Buffer.from('{}');
/** The annotation ordering published indexes (newest first). */
export const CREATED = 'org.opencontainers.image.created';

/** One layer of the image as the cache holds it. */
export interface PublishLayer {
  digest: string;
  diffId: string;
  indexPath: string;
  /** Bytes of the compressed blob (the manifest's layer size): lets an `.idx` made from another blob be re-headed. */
  size?: number;
}

/** What {@link publishIndex} pushed and how clients will find it. */
export interface PublishResult {
  /** The artifact manifest's descriptor. */
  artifact: Descriptor;
  /** How referrers are found there: the registry's API, or the fallback tag it updated. */
  discovery: 'referrers-api' | 'tag-fallback';
  blobs: number;
  /** Layers left out: their cached `.idx` describes another blob and their size is unknown (readers pull them whole). */
  skipped: string[];
}

function descriptor(bytes: Buffer, mediaType: string, annotations?: Record<string, string>): Descriptor {
  return { mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length, ...(annotations ? { annotations } : {}) };
}

/** Pushes the artifact for the image manifest `subjectDigest` of `repo` (a reference naming the repository). */
export async function publishIndex(
  repo: Reference,
  subjectDigest: string,
  layers: PublishLayer[],
  options: RegistryClientOptions & { cacheRoot: string; signal?: AbortSignal },
): Promise<PublishResult> {
  const client = new RegistryClient(options);
  const sink = new RegistrySink(repo, options);
  try {
    const subject = await client.fetchManifest({ registry: repo.registry, repository: repo.repository, digest: subjectDigest }, options.signal ? { signal: options.signal } : {});
    const built = await buildLazyArtifact(subject, withManifestSizes(layers, subject.bytes), options.cacheRoot, new Date());
    const { artifact, bytes, blobs, skipped } = built;
    for (const b of [built.config, ...blobs]) {
      if (await sink.has(b.desc, options.signal)) continue;
      await sink.writeBlob(b.desc, async (offset) => Readable.from([b.bytes.subarray(offset)]), () => undefined, options.signal);
    }
    await sink.putManifest(artifact, bytes, undefined, true, options.signal);
    if (await hasReferrersApi(client, repo, subject.digest, options.signal)) return { artifact, discovery: 'referrers-api', blobs: blobs.length, skipped };
    await addToFallback(client, sink, repo, subject.digest, artifact, options.signal);
    return { artifact, discovery: 'tag-fallback', blobs: blobs.length, skipped };
  } finally {
    await sink.close();
    await client.close();
  }
}

/** `layers` with each blob's size as the image manifest gives it (the cache's record may be another blob's). */
function withManifestSizes(layers: PublishLayer[], manifest: Buffer): PublishLayer[] {
  const doc = JSON.parse(manifest.toString('utf8')) as { layers?: { digest?: unknown; size?: unknown }[] };
  const sizes = new Map((doc.layers ?? []).map((d) => [d.digest, d.size]));
  return layers.map((l) => {
    const size = sizes.get(l.digest);
    const { size: _cached, ...rest } = l;
    return typeof size === 'number' ? { ...rest, size } : rest;
  });
}

/** A lazy-index artifact as {@link buildLazyArtifact} makes it: the manifest, its descriptor and its blobs. */
export interface LazyArtifact {
  /** The artifact manifest's descriptor (with `artifactType`). */
  readonly artifact: Descriptor;
  /** The artifact manifest's exact bytes. */
  readonly bytes: Buffer;
  /** The empty config blob. */
  readonly config: { readonly desc: Descriptor; readonly bytes: Buffer };
  /** One `.idx` per layer, and a `.zran` for each layer that has one, in layer order. */
  readonly blobs: readonly { readonly desc: Descriptor; readonly bytes: Buffer }[];
  /** Digests of the layers left out (see {@link idxForBlob}). */
  readonly skipped: string[];
}

/**
 * The artifact for the image manifest `subject`: each layer's `.idx` (read from `indexPath`) and its
 * `.zran` when `<cacheRoot>/checkpoints/` holds one, annotated with the layer digest and diff_id.
 * Without `created` the bytes depend on the inputs alone (the same artifact digest every time).
 */
export async function buildLazyArtifact(subject: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>, layers: readonly PublishLayer[], cacheRoot: string, created?: Date): Promise<LazyArtifact> {
  const blobs: { desc: Descriptor; bytes: Buffer }[] = [];
  const skipped: string[] = [];
  for (const l of layers) {
    const ann = { [LAYER_ANNOTATION]: l.digest, 'dev.vmimg.layer.diff_id': l.diffId };
    const idx = idxForBlob(await readFile(l.indexPath), l);
    if (idx === undefined) {
      skipped.push(l.digest);
      continue;
    }
    blobs.push({ desc: descriptor(idx, IDX_MEDIA_TYPE, ann), bytes: idx });
    const zran = await readFile(zranPath(cacheRoot, l.digest)).catch(() => undefined);
    if (zran !== undefined) blobs.push({ desc: descriptor(zran, ZRAN_MEDIA_TYPE, ann), bytes: zran });
  }
  const config = descriptor(EMPTY, 'application/vnd.oci.empty.v1+json');
  const annotations = created !== undefined ? { [CREATED]: created.toISOString() } : undefined;
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: ARTIFACT_TYPE,
    config,
    layers: blobs.map((b) => b.desc),
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    ...(annotations ? { annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  // The referrers spec: a list descriptor carries the manifest's artifactType and annotations (so
  // readers order candidates by `created` without fetching each manifest).
  return { artifact: { ...descriptor(bytes, OCI_MANIFEST, annotations), artifactType: ARTIFACT_TYPE } as Descriptor, bytes, config: { desc: config, bytes: EMPTY }, blobs, skipped };
}

/**
 * The `.idx` to publish for layer `l`: the cached one when it names `l.digest` (or names no blob). The
 * cache keys layers by diff_id, so a layer first stored from another blob (same tar, zstd vs gzip) has
 * an `.idx` naming that blob. Its records depend on the tar alone, so the header is rewritten with
 * `l.digest` and `l.size` (CRC recomputed); undefined when `l.size` is unknown (the layer is left out).
 */
export function idxForBlob(idx: Buffer, l: Pick<PublishLayer, 'digest' | 'size'>): Buffer | undefined {
  const { header, version } = scanIndex(idx);
  if ((header.digest === undefined || header.digest === l.digest) && (header.compressedSize === 0 || l.size === undefined || header.compressedSize === l.size)) return idx;
  if (l.size === undefined) return undefined;
  const entriesSize = idx.length - HEADER_SIZE;
  const head = encodeHeader({ ...header, digest: l.digest, compressedSize: l.size }, header.entryCount, entriesSize, idx.readUInt32LE(120), version); // 120: the entries' CRC-32
  return Buffer.concat([head, idx.subarray(HEADER_SIZE)]);
}

async function hasReferrersApi(client: RegistryClient, repo: Reference, digest: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await client.fetchApi(repo, `referrers/${digest}`, { accept: OCI_INDEX, ...(signal ? { signal } : {}) });
    return true;
  } catch (err) {
    if (isVmimgError(err, ErrorCode.NOT_FOUND)) return false; // the spec: 404 means "use the tag schema"
    throw err;
  }
}

/** How long an entry must stay listed before a pusher trusts it (ms): a racing writer's PUT lands within it. */
const FALLBACK_SETTLE_MS = 300;
const FALLBACK_ATTEMPTS = 8;

/**
 * Read-modify-write of the fallback index. Registries without the referrers API have no conditional
 * PUT, so two pushers reading the same list each write it with only their own entry added, and the
 * later PUT drops the earlier one's. So an entry counts as published only when a read *after a settle
 * delay* still lists it; a pusher that finds its entry dropped adds it to the list as it is then.
 * What is left: a writer whose PUT lands later than the settle delay after its read (see DECISIONS).
 */
async function addToFallback(client: RegistryClient, sink: RegistrySink, repo: Reference, subject: string, artifact: Descriptor, signal?: AbortSignal): Promise<void> {
  const tag = fallbackTag(subject);
  let seen = false;
  for (let attempt = 0; attempt < FALLBACK_ATTEMPTS; attempt++) {
    const list = await readFallback(client, repo, tag, signal ? { signal } : {});
    if (list.some((d) => d.digest === artifact.digest)) {
      if (seen) return; // still there after a settle delay
      seen = true;
    } else {
      seen = false;
      const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...list, artifact] };
      const bytes = Buffer.from(JSON.stringify(index));
      await sink.putManifest(descriptor(bytes, OCI_INDEX), bytes, tag, true, signal);
    }
    await delay(FALLBACK_SETTLE_MS * (1 + Math.random()), undefined, signal ? { signal } : {}); // jitter: two losers do not collide again
  }
  throw new VmimgError(ErrorCode.REGISTRY_ERROR, `the referrers tag ${tag} did not keep listing ${artifact.digest} after ${FALLBACK_ATTEMPTS} writes: other writers, or a registry that does not answer with what it stored`);
}

/** The descriptors the fallback tag lists (empty when the tag does not exist; see {@link descriptorsOf}). */
export async function readFallback(client: RegistryClient, repo: Reference, tag: string, call: CallOptions = {}): Promise<Descriptor[]> {
  try {
    return descriptorsOf((await client.fetchManifest({ registry: repo.registry, repository: repo.repository, tag }, call)).bytes);
  } catch (err) {
    if (isVmimgError(err, ErrorCode.NOT_FOUND)) return [];
    throw err;
  }
}
