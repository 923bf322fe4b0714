/**
 * One request: parse the path, route the repository, answer, and write one access record. Only GET
 * and HEAD exist (a read-only registry); `/metrics` is served beside the API.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveTags, serveReferrers } from './api.js';
import { serveBlob } from './blobs.js';
import { errorBody, ServeError, toServeError } from './errors.js';
import { AUTH_REALM } from './htpasswd.js';
import { serveManifest } from './manifests.js';
import { clip, parseApiPath, type ApiPath } from './paths.js';
import type { Router } from './routes.js';
import type { ServeState } from './state.js';

/** One line of the access log (JSON): what was asked, what was answered, how it was served. */
export interface AccessRecord {
  readonly time: string;
  readonly remote: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Bytes written to the connection for this answer (headers included). */
  readonly bytes: number;
  readonly ms: number;
  /** `hit`, `miss`, `revalidated` (a tag checked with one HEAD), `stale`, or absent when no cache was involved. */
  readonly cache?: string;
  /** The upstream the repository routes to. */
  readonly upstream?: string;
  /** The spec error code of an error answer (or of a cut one: its status is 499). */
  readonly error?: string;
  /** The vmimg error code behind it (e.g. ERR_IO), and the errno that caused it (e.g. ENOSPC). */
  readonly code?: string;
  readonly errno?: string;
  /** The client's user name, when client auth (`--htpasswd`) is on and it proved one. */
  readonly user?: string;
}

/** Answers one request; never throws. */
export async function handle(s: ServeState, router: Router, req: IncomingMessage, res: ServerResponse, log?: (r: AccessRecord) => void): Promise<void> {
  const began = Date.now();
  const url = new URL(req.url ?? '/', 'http://serve.invalid');
  const rawPath = (req.url ?? '/').replace(/[?#].*$/, ''); // not normalised: `..` must fail the name grammar, not resolve
  let upstream: string | undefined;
  let error: string | undefined;
  let detail: Record<string, unknown> = {};
  let user: string | undefined;
  const written = req.socket.bytesWritten; // the socket may carry earlier answers (keep-alive)
  const remote = req.socket.remoteAddress ?? ''; // read now: a socket destroyed mid-body no longer has it
  res.once('close', () => {
    s.metrics.request(endpointOf(rawPath), res.statusCode);
    log?.({
      time: new Date(began).toISOString(),
      remote,
      method: req.method ?? '',
      path: clip(req.url ?? '/'),
      status: res.writableFinished ? res.statusCode : 499,
      bytes: req.socket.bytesWritten - written,
      ms: Date.now() - began,
      ...(typeof res.getHeader('x-vmimg-cache') === 'string' ? { cache: res.getHeader('x-vmimg-cache') as string } : {}),
      ...(upstream !== undefined ? { upstream } : {}),
      ...(error !== undefined ? { error } : {}),
      ...(typeof detail.vmimg === 'string' ? { code: detail.vmimg } : {}),
      ...(typeof detail.errno === 'string' ? { errno: detail.errno } : {}),
      ...(user !== undefined ? { user } : {}),
    });
  });
  try {
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    if (s.auth !== undefined) user = await s.auth.check(req.headers.authorization); // before anything is read or fetched
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new ServeError(405, 'UNSUPPORTED', `${clip(req.method ?? '')} is not supported: this is a read-only pull-through cache`);
    }
    const head = req.method === 'HEAD';
    if (rawPath === '/metrics') return void text(res, 200, s.metrics.render(), 'text/plain; version=0.0.4', head);
    const path = parseApiPath(rawPath);
    if (path.kind === 'base') return void text(res, 200, '{}', 'application/json', head);
    const t = router.resolve(path.name, url.searchParams.get('ns') ?? undefined);
    upstream = t.upstream.url;
    await answer(s, req, res, path, t, url.searchParams, head);
  } catch (err) {
    const e = toServeError(err);
    error = e.apiCode;
    detail = e.detail;
    if (res.headersSent) return void res.destroy(); // mid-body: cut, never end cleanly
    const body = errorBody(e);
    res.removeHeader('content-range');
    if (e.status === 401) res.setHeader('www-authenticate', `Basic realm="${AUTH_REALM}"`);
    if (e.status === 429) res.setHeader('retry-after', '1');
    text(res, e.status, body, 'application/json', req.method === 'HEAD');
  }
}

async function answer(s: ServeState, req: IncomingMessage, res: ServerResponse, path: Exclude<ApiPath, { kind: 'base' }>, t: ReturnType<Router['resolve']>, query: URLSearchParams, head: boolean): Promise<void> {
  switch (path.kind) {
    case 'manifest':
      return serveManifest(s, req, res, t, path, head);
    case 'blob':
      return serveBlob(s, res, t, path.digest, req.headers.range, head);
    case 'tags':
      return serveTags(s, res, t, path.name, query);
    case 'referrers':
      return serveReferrers(s, res, t, path.digest, query);
  }
}

function text(res: ServerResponse, status: number, body: string, type: string, head: boolean): void {
  res.statusCode = status;
  res.setHeader('content-type', type);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

/** The endpoint kind of a path, for metrics labels (never the client's raw path). */
function endpointOf(pathname: string): string {
  if (pathname === '/metrics') return 'metrics';
  if (pathname === '/v2/' || pathname === '/v2') return 'base';
  const m = /\/(manifests|blobs|referrers)\/[^/]+$|\/tags\/list$/.exec(pathname);
  return m === null ? 'other' : (m[1] ?? 'tags');
}
