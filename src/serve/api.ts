/**
 * The small pass-through endpoints: `tags/list` (with `n`, `last` and the `Link` header, rewritten to
 * the client's repository name) and the referrers API. An upstream without the referrers API
 * (distribution 2.8 answers 404) is asked for the spec's fallback tag `sha256-<hex>`; no referrers
 * at all is an empty image index, as the spec says.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode, isVmimgError } from '../errors.js';
import { MediaType } from '../manifest/media-types.js';
import type { Descriptor } from '../manifest/types.js';
import { descriptorsOf, fallbackTag } from '../manifest/referrers.js';
import { toServeError } from './errors.js';
import type { RouteTarget } from './routes.js';
import type { ServeState } from './state.js';

/** GET tags/list: the upstream's answer with the repository name and `Link` as the client sees them. */
export async function serveTags(s: ServeState, res: ServerResponse, t: RouteTarget, clientName: string, query: URLSearchParams): Promise<void> {
  const q = new URLSearchParams();
  for (const k of ['n', 'last']) if (query.has(k)) q.set(k, query.get(k)!);
  const qs = q.size > 0 ? `?${q.toString()}` : '';
  let answer;
  try {
    answer = await s.upstream.api(t, `tags/list${qs}`, 'application/json');
  } catch (err) {
    throw toServeError(err, 'NAME_UNKNOWN');
  }
  let body = answer.bytes;
  try {
    const doc = JSON.parse(body.toString('utf8')) as { name?: unknown; tags?: unknown };
    body = Buffer.from(JSON.stringify({ ...doc, name: clientName }));
  } catch {
    // not JSON: passed on as it came
  }
  if (answer.link !== undefined) res.setHeader('link', answer.link.replace(`/v2/${t.repository}/`, `/v2/${clientName}/`));
  res.statusCode = 200;
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', body.length);
  s.metrics.bytesServed += body.length;
  res.end(body);
}

/**
 * GET referrers/<digest>: the upstream's API, else its fallback tag, else an empty index; with
 * `--prepare`, the image's layer-index artifact is added once the image is prepared (and is the answer
 * alone when the upstream fails).
 */
export async function serveReferrers(s: ServeState, res: ServerResponse, t: RouteTarget, digest: string, query: URLSearchParams): Promise<void> {
  const artifactType = query.get('artifactType') ?? undefined;
  const local = await s.prepare?.referrer(s, digest);
  let manifests: Descriptor[];
  try {
    manifests = await upstreamReferrers(s, t, digest);
  } catch (err) {
    if (local === undefined) throw err;
    manifests = [];
  }
  if (local !== undefined && !manifests.some((d) => d.digest === local.digest)) manifests = [...manifests, local];
  if (artifactType !== undefined) {
    manifests = manifests.filter((d) => d.artifactType === artifactType);
    res.setHeader('oci-filters-applied', 'artifactType');
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests }));
  res.statusCode = 200;
  res.setHeader('content-type', MediaType.OCI_INDEX);
  res.setHeader('content-length', body.length);
  s.metrics.bytesServed += body.length;
  res.end(body);
}

/**
 * The upstream's referrers of `digest`: its API, else its fallback tag, else none. Only entries that are
 * descriptors are passed on (`descriptorsOf`: anyone with push rights writes the tag; a null entry made
 * this answer ERR_INTERNAL, breaker, session 14); an answer that is not JSON lists none.
 */
async function upstreamReferrers(s: ServeState, t: RouteTarget, digest: string): Promise<Descriptor[]> {
  try {
    return descriptorsOf((await s.upstream.api(t, `referrers/${digest}`, MediaType.OCI_INDEX)).bytes);
  } catch (err) {
    if (!isVmimgError(err, ErrorCode.NOT_FOUND)) throw toServeError(err, 'NAME_UNKNOWN');
  }
  try {
    return descriptorsOf((await s.upstream.manifest(t, { tag: fallbackTag(digest) })).bytes);
  } catch (err) {
    if (!isVmimgError(err, ErrorCode.NOT_FOUND)) throw toServeError(err, 'NAME_UNKNOWN');
    return [];
  }
}
