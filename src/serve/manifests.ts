/**
 * Manifest GET/HEAD by tag or digest. By digest: the stored bytes, else fetched once, verified and
 * stored. By tag: the tag table's digest while fresh (TTL), else one HEAD upstream revalidates it; an
 * upstream that fails then gets the last known digest served with a `Warning` (stale-if-error).
 * The exact stored bytes are served, never converted; a tag whose manifest type the client's
 * `Accept` does not list is MANIFEST_UNKNOWN (as distribution answers), a digest is always served.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, isVmimgError } from '../errors.js';
import { MediaType } from '../manifest/media-types.js';
import { isValidDigest } from '../digest/index.js';
import { ServeError, toServeError } from './errors.js';
import type { RouteTarget } from './routes.js';
import { learnSize, once, type ServedManifest as Manifest, type ServeState } from './state.js';
import type { TagEntry } from './tags.js';

/** Answers a manifest request. */
export async function serveManifest(s: ServeState, req: IncomingMessage, res: ServerResponse, t: RouteTarget, target: { tag?: string; digest?: string }, head: boolean): Promise<void> {
  let m: Manifest;
  try {
    if (target.digest !== undefined) {
      m = await byDigest(s, res, t, target.digest, head);
    } else {
      const entry = await tagEntry(s, res, t, target.tag!, head);
      m = await byDigest(s, res, t, entry.digest, head, entry.mediaType);
      if (!accepts(req.headers.accept, m.mediaType)) {
        throw new ServeError(404, 'MANIFEST_UNKNOWN', `${t.repository}:${target.tag} is a ${m.mediaType}, which the request's Accept header does not list`);
      }
    }
  } catch (err) {
    res.removeHeader('warning'); // a stale tag whose manifest could not be had: an error, not a stale answer
    throw toServeError(err, 'MANIFEST_UNKNOWN');
  }
  // per request, as the access log's `cache`: a miss waited for an upstream fetch (its own or one it joined)
  if (res.getHeader('x-vmimg-cache') === 'miss') s.metrics.misses.manifest++;
  else s.metrics.hits.manifest++;
  res.statusCode = 200;
  res.setHeader('content-type', m.mediaType);
  res.setHeader('docker-content-digest', m.digest);
  res.setHeader('etag', `"${m.digest}"`);
  res.setHeader('content-length', m.bytes.length);
  s.prepare?.served(s, t, m, target.tag, head);
  if (head) return void res.end();
  s.prefetch?.served(s, t, m.digest, m.bytes); // started already when this request fetched it
  s.metrics.bytesServed += m.bytes.length;
  res.end(m.bytes);
}

/** The tag's entry: fresh from the table, revalidated by one HEAD, or stale when the upstream fails. */
async function tagEntry(s: ServeState, res: ServerResponse, t: RouteTarget, tag: string, head: boolean): Promise<TagEntry> {
  const key = `${t.upstream.url}/${t.repository}:${tag}`;
  const known = s.tags.get(key);
  if (known !== undefined && s.tags.fresh(known)) return known;
  if (known !== undefined && s.down.held(t.upstream.url)) return stale(s, res, known);
  res.setHeader('x-vmimg-cache', known === undefined ? 'miss' : 'revalidated');
  try {
    const entry = await once(s, `tag ${key}`, async () => {
      if (known !== undefined) {
        // an upstream that hangs is down too: the stale answer after revalidateTimeoutMs, not its idle timeout
        const desc = await s.upstream.resolveTag(t, tag, undefined, s.revalidateTimeoutMs);
        if (desc.digest === known.digest) return s.tags.set(key, known);
        return s.tags.set(key, { digest: desc.digest, mediaType: desc.mediaType, size: desc.size });
      }
      const m = await s.upstream.manifest(t, { tag });
      await keep(s, t, m, head);
      return s.tags.set(key, { digest: m.digest, mediaType: m.mediaType, size: m.size });
    });
    s.down.answered(t.upstream.url);
    return entry;
  } catch (err) {
    if (known === undefined || !upstreamDown(err)) throw err;
    s.down.failed(t.upstream.url);
    return stale(s, res, known);
  }
}

/** A tag's last known entry, served stale (stale-if-error) with a Warning. */
function stale(s: ServeState, res: ServerResponse, known: TagEntry): TagEntry {
  s.metrics.staleServed++;
  res.setHeader('warning', '110 vmimg "Response is Stale"');
  res.setHeader('x-vmimg-cache', 'stale');
  return known;
}

/** The manifest with this digest: from the store (or its commit), else fetched (once), verified and stored. */
async function byDigest(s: ServeState, res: ServerResponse, t: RouteTarget, digest: string, head: boolean, mediaType?: string): Promise<Manifest> {
  const have = await kept(s, digest, mediaType);
  if (have !== undefined) {
    if (!res.hasHeader('x-vmimg-cache')) res.setHeader('x-vmimg-cache', 'hit');
    return have;
  }
  res.setHeader('x-vmimg-cache', 'miss');
  return once(s, `manifest ${digest}`, async () => {
    // a fetch that ended while this request looked (its `once` gone already) left it committing or stored
    const meanwhile = await kept(s, digest, mediaType);
    if (meanwhile !== undefined) return meanwhile;
    // an upstream a revalidation just found down: at once, not after its timeouts again (a stale tag whose manifest went)
    if (s.down.held(t.upstream.url)) throw new ServeError(503, 'UNAVAILABLE', `${t.upstream.url} is down (a revalidation failed less than ${s.down.holdMs / 1000} s ago) and ${digest} is not in the cache`);
    const m = await s.upstream.manifest(t, { digest });
    await keep(s, t, m, head);
    return m;
  });
}

/** The manifest when it is being committed or stored; undefined when it must be fetched. */
async function kept(s: ServeState, digest: string, mediaType: string | undefined): Promise<Manifest | undefined> {
  const committing = s.commits.get(digest);
  if (committing !== undefined) return committing;
  // its commit may end while we look: the store has it then, or `commits` still does
  if (!(await s.store.has(digest))) return s.commits.get(digest);
  let bytes: Buffer;
  try {
    bytes = await s.store.readBytes(digest, s.maxManifestBytes);
  } catch (err) {
    if (isVmimgError(err, ErrorCode.NOT_FOUND)) return undefined; // evicted (budget.ts) or pruned since: fetched again
    throw err;
  }
  s.budget.used(digest, bytes.length, 'manifest');
  return { bytes, digest, mediaType: mediaType ?? s.mediaTypes.get(digest) ?? sniffType(bytes) };
}

/**
 * Learns a fetched (verified) manifest's descriptors' sizes, starts its blobs (a GET), and commits it
 * under the server's lease without making its answer wait: the lease's datasync and the store's
 * fsyncs took 15-40 ms of every manifest miss (4 cold clients of serve's bench: a tenth of the wall
 * before the first blob byte). Until the commit ends the manifest is answered from `s.commits`; a
 * commit that fails (a full disk) is a warning, and the manifest is fetched again when next asked.
 * Resolves at once, or once the commit ended when too many bytes of manifests are committing (commits.ts).
 */
function keep(s: ServeState, t: RouteTarget, m: Manifest, head: boolean): Promise<void> {
  const blobs: string[] = [];
  try {
    const doc = JSON.parse(m.bytes.toString('utf8')) as { config?: unknown; layers?: unknown; manifests?: unknown };
    for (const d of [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : []), ...(Array.isArray(doc.manifests) ? doc.manifests : [])]) {
      const { digest, size } = (d ?? {}) as { digest?: unknown; size?: unknown };
      if (typeof digest !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) continue;
      learnSize(s, digest, size);
      if (isValidDigest(digest)) blobs.push(digest);
    }
  } catch {
    // not JSON: served as the upstream sent it; nothing to learn
  }
  s.mediaTypes.set(m.digest, m.mediaType);
  if (!head) s.prefetch?.served(s, t, m.digest, m.bytes); // under the lease too (the same write, or the next)
  return s.commits.start(
    m,
    async () => {
      await s.held.add([m.digest, ...blobs]); // before the store has it: prune must not take it
      await s.budget.makeRoom(m.digest, m.bytes.length);
      try {
        await s.store.putBytes(m.bytes, { digest: m.digest, size: m.bytes.length });
      } finally {
        s.budget.release(m.digest);
      }
      s.budget.stored(m.digest, m.bytes.length, 'manifest');
    },
    (err) => s.warn(`manifest ${m.digest} of ${t.repository} was served but not stored: ${err instanceof Error ? err.message : String(err)}`),
  );
}

/** A manifest's type from its bytes (`mediaType`, else the OCI shape), for bytes stored without one. */
function sniffType(bytes: Buffer): string {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    return Array.isArray(doc.manifests) ? MediaType.OCI_INDEX : MediaType.OCI_MANIFEST;
  } catch {
    return MediaType.OCI_MANIFEST;
  }
}

/** Does an `Accept` header list `mediaType` (no header, `*\/*` or `application/*` accept all)? */
function accepts(header: string | undefined, mediaType: string): boolean {
  if (header === undefined || header.trim() === '') return true;
  const types = header.split(',').map((p) => p.split(';')[0]!.trim().toLowerCase());
  return types.some((x) => x === mediaType || x === '*/*' || x === 'application/*');
}

/** Failures that stale-if-error covers: the upstream unreachable or failing, not a tag it says is gone. */
function upstreamDown(err: unknown): boolean {
  return isVmimgError(err, ErrorCode.NETWORK) || isVmimgError(err, ErrorCode.REGISTRY_UNAVAILABLE) || isVmimgError(err, ErrorCode.REGISTRY_ERROR);
}
