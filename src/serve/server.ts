/**
 * `vmimg serve`: a pull-through caching registry over the vmimg cache (node:http / node:https).
 * Listens on loopback by default; plain HTTP elsewhere only when asked (`insecure`). Every request
 * is one access-log record; `/metrics` is the Prometheus text; `shutdown()` stops accepting, lets
 * in-flight answers finish within a grace period, then aborts the downloads (their partial files stay
 * and resume on the next start).
 */
import { setMaxListeners } from 'node:events';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { CacheLayout } from '../image/cache.js';
import { openLease } from '../image/lease.js';
import { isLoopbackHost } from '../reference/index.js';
import type { RegistryClientOptions } from '../registry/index.js';
import { BlobStore } from '../store/index.js';
import { handle, type AccessRecord } from './handler.js';
import { CacheBudget, DEFAULT_MIN_FREE_FRACTION, type BudgetLimits } from './budget.js';
import { Fills, HASH_HERE } from './fill.js';
import { Htpasswd, type LoginLimits } from './htpasswd.js';
import { LeaseHolder } from './held.js';
import type { PrepareRecord } from './prepare.js';
import { DEFAULT_PREFETCH, Prefetcher } from './prefetch.js';
import { ServeMetrics } from './metrics.js';
import { SmallBlobs } from './small-blobs.js';
import { PendingCommits } from './commits.js';
import { Router, parseUpstream, plainHttpHosts } from './routes.js';
import { DownUpstreams, type ServeState } from './state.js';
import { TagTable } from './tags.js';
import { loadTlsFiles } from './tls.js';
import { UpstreamAccess } from './upstream.js';
import { MAX_MANIFEST_BYTES } from '../manifest/media-types.js';
import { sharedHashPool } from '../util/hash-pool.js';

export type { AccessRecord, PrepareRecord };

/** How to run the server. Durations in milliseconds. */
export interface ServeOptions {
  /** The cache directory shared with the CLI (`vmimg pull` on the same host hits what serve stored). */
  readonly cacheDir: string;
  /** `HOST:PORT` (default `127.0.0.1:5050`; port 0 picks a free one). */
  readonly listen?: string;
  /** Where unprefixed repositories go: `http(s)://HOST[:PORT]`. */
  readonly upstream?: string;
  /** `PREFIX=URL` routes: `/v2/PREFIX/repo/...` goes to URL as `repo`. */
  readonly routes?: readonly string[];
  /** Allow plain HTTP on a non-loopback address (default false). */
  readonly insecure?: boolean;
  /** An htpasswd file of bcrypt entries (`htpasswd -B`): clients must log in with HTTP Basic. */
  readonly htpasswd?: string;
  /** bcrypt checks of `htpasswd` logins at once, and how many may wait (defaults 2 and 16; more: 429). */
  readonly loginLimits?: LoginLimits;
  /** PEM files for HTTPS. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** How long a tag's digest is trusted before one HEAD revalidates it (default 5 minutes). */
  readonly tagTtlMs?: number;
  /**
   * How long revalidating a tag waits for the upstream, retries included, before the last known digest
   * is served with a `Warning` (default 3 s): an upstream that hangs is as down as one that refuses.
   */
  readonly revalidateTimeoutMs?: number;
  /**
   * After a revalidation finds an upstream down (it failed or passed `revalidateTimeoutMs`), how long
   * tags it knows are served stale at once without asking it (default 10 s; 0: every revalidation asks).
   */
  readonly downHoldMs?: number;
  /** In-flight answers get this long to finish at shutdown (default 30 s). */
  readonly shutdownGraceMs?: number;
  /** Client connections at once (default 256): each holds up to a 1 MiB read buffer, so memory stays bounded. */
  readonly maxConnections?: number;
  /** Largest manifest taken from an upstream (default 4 MiB). */
  readonly maxManifestBytes?: number;
  /**
   * Bytes of blobs the cache may hold; past it the least recently served ones that no cached image
   * needs are deleted (budget.ts). Default: no size bound, only `minFree`.
   */
  readonly maxCacheBytes?: number;
  /**
   * Free space kept on the cache's file system, in bytes or as `"N%"` of it; below it the least
   * recently served blobs are deleted, and a miss makes room before its first byte (default `"5%"`; 0: none).
   */
  readonly minFree?: number | `${number}%`;
  /** Credentials, network settings and TLS for upstreams (mirrors are ignored: serve is the mirror). */
  readonly registry?: RegistryClientOptions;
  /** One record per answered request. */
  readonly onAccess?: (record: AccessRecord) => void;
  /**
   * Flatten images into the cache as they are pulled through (checkpoints too), and answer their layer
   * indexes on the referrers endpoint (default false).
   */
  readonly prepare?: boolean;
  /** One record per image `prepare` finished or failed. */
  readonly onPrepare?: (record: PrepareRecord) => void;
  /**
   * What went wrong without failing an answer, one line each: a manifest served but not stored (its
   * commit runs after the answer; a full disk), a tag table not saved. Counted in `/metrics` too.
   * Default: ignored.
   */
  readonly onWarning?: (message: string) => void;
  /**
   * Blob downloads started ahead of clients at once when an image manifest is sent (default 3); 0: none,
   * blobs are fetched only when asked.
   */
  readonly prefetch?: number;
  /**
   * Blobs of at least this many bytes (size known) are fetched by the registry client's direct GET
   * (default DIRECT_MIN_BYTES in registry/direct-get.ts, 4 MiB; 0: every blob, whatever its size), the rest over undici.
   */
  readonly directFromBytes?: number;
}

/** A running server. */
export interface RunningServe {
  /** `http(s)://HOST:PORT`. */
  readonly url: string;
  /** `HOST:PORT`, as references and `ctr` take it. */
  readonly host: string;
  readonly metrics: ServeMetrics;
  /** The disk bound in effect (budget.ts): `minFreeBytes` is `minFree` resolved against the cache's disk. */
  readonly cacheBound: BudgetLimits;
  /**
   * Resolves once the downloads and manifests fetched so far are committed to the store (a client gets
   * its last byte when the blob is verified, just before the commit; a manifest is answered before
   * its commit), every image `prepare` queued is prepared and the tag table is saved.
   */
  idle(): Promise<void>;
  /** Stops accepting; waits for in-flight answers (up to the grace period), then cuts the rest. */
  shutdown(): Promise<void>;
}

/** The default listen address. */
export const DEFAULT_LISTEN = '127.0.0.1:5050';
/** Client connections served at once by default. */
export const DEFAULT_MAX_CONNECTIONS = 256;
/** The default tag TTL: 5 minutes. */
export const DEFAULT_TAG_TTL_MS = 5 * 60_000;
/** The default wait for an upstream revalidating a tag before the stale digest is served: 3 s. */
export const DEFAULT_REVALIDATE_TIMEOUT_MS = 3000;
/** The default time an upstream found down by a revalidation is left alone: 10 s. */
export const DEFAULT_DOWN_HOLD_MS = 10_000;

/** Starts the server; ERR_INVALID_ARGUMENT for a bad address, route or an unsafe plain-HTTP listen. */
export async function startServe(options: ServeOptions): Promise<RunningServe> {
  const { hostname, port } = parseListen(options.listen ?? DEFAULT_LISTEN);
  if (options.tls === undefined && options.insecure !== true && !isLoopbackHost(hostname)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `plain HTTP on ${hostname} would serve the cache unencrypted beyond this host`, {
      hint: 'Give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure.',
    });
  }
  const tls = options.tls && loadTlsFiles(options.tls);
  const auth = options.htpasswd !== undefined ? Htpasswd.load(options.htpasswd, options.loginLimits) : undefined;
  const router = new Router(options.upstream !== undefined ? parseUpstream(options.upstream, '--upstream') : undefined, options.routes ?? []);
  const cache = new CacheLayout(options.cacheDir);
  const metrics = new ServeMetrics();
  const abort = new AbortController();
  // every download and lock wait listens to it, and takes its listener off when done: many at once is no leak
  setMaxListeners(0, abort.signal);
  const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
  if (!Number.isInteger(prefetch) || prefetch < 0) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `prefetch must be a whole number of downloads (0: none), not ${prefetch}`);
  const revalidateTimeoutMs = options.revalidateTimeoutMs ?? DEFAULT_REVALIDATE_TIMEOUT_MS;
  // 0 would be no timeout at all (undici), and Node's timers fire at once past 2^31-1 ms
  if (!(revalidateTimeoutMs > 0 && revalidateTimeoutMs <= 2 ** 31 - 1)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `revalidate timeout must be more than 0 and at most 2147483647 ms, not ${revalidateTimeoutMs}`);
  }
  if (options.maxCacheBytes !== undefined && !(Number.isSafeInteger(options.maxCacheBytes) && options.maxCacheBytes >= 1)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `the cache's size bound must be a whole number of bytes, not ${options.maxCacheBytes}`);
  }
  const minFree = parseMinFree(options.minFree);
  const downHoldMs = options.downHoldMs ?? DEFAULT_DOWN_HOLD_MS;
  if (!(Number.isSafeInteger(downHoldMs) && downHoldMs >= 0)) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `the down hold must be a whole number of ms, 0 or more, not ${downHoldMs}`);
  // the server's abort ends a wait for the GC lock (a prune running): shutdown does not wait on a commit for it
  const lease = await openLease(cache, [], abort.signal);
  const held = new LeaseHolder(lease);
  const commits = new PendingCommits();
  // start the hash pool's worker now, not in the first miss's path, when anything will use it (--prepare's
  // flattening; downloads on a machine with more than 2 cores, see HASH_HERE)
  if (options.prepare === true || !HASH_HERE) void sharedHashPool().digest(Buffer.alloc(0));
  const store = new BlobStore(options.cacheDir);
  const warn = (message: string): void => {
    metrics.warnings++;
    options.onWarning?.(message);
  };
  const tagsFile = join(options.cacheDir, 'serve', 'tags.json');
  const tags = new TagTable(tagsFile, options.tagTtlMs ?? DEFAULT_TAG_TTL_MS, Date.now, (err) => {
    warn(`the tag table was not saved to ${tagsFile} (tags are still served; after a restart each is revalidated): ${err instanceof Error ? err.message : String(err)}`);
  });
  await tags.load();
  const { mirrors: _ignored, ...clientOptions } = options.registry ?? {};
  const insecure = [...(clientOptions.insecureRegistries ?? []), ...plainHttpHosts(router.upstreams())];
  const small = new SmallBlobs();
  const fills: Fills = new Fills(store, abort.signal, {
    small,
    room: (digest, bytes): Promise<void> => budget.makeRoom(digest, bytes),
    stored: (digest, size) => budget.stored(digest, size),
    ended: (digest) => budget.release(digest),
    started: (digest) => held.add([digest]),
    changed: (n) => {
      metrics.inFlightDownloads = n;
    },
    received: (n) => {
      metrics.upstreamBytes += n;
    },
  });
  // the cache's disk, once: the free-space floor may be a share of it, and past its size it is a warning
  const diskBytes = await statfs(options.cacheDir).then((st) => st.blocks * st.bsize, () => 0);
  const budget: CacheBudget = new CacheBudget(
    cache,
    { ...(options.maxCacheBytes !== undefined ? { maxBytes: options.maxCacheBytes } : {}), minFreeBytes: minFree(diskBytes) },
    {
      lease,
      busy: (digest): boolean => fills.has(digest) || commits.get(digest) !== undefined,
      evicting: (digests) => held.forget(digests),
      warn,
    },
    abort.signal,
  );
  metrics.budget = budget.counts;
  if (diskBytes > 0 && budget.limits.minFreeBytes >= diskBytes) {
    warn(`the free space to keep (${budget.limits.minFreeBytes} bytes) is more than the cache's disk holds (${diskBytes}): every blob is evicted once stored`);
  }
  // in the background: a large cache takes a stat per blob
  void budget.start().catch((err: unknown) => warn(`reading the cache's blobs for its bound failed: ${err instanceof Error ? err.message : String(err)}`));
  const state: ServeState = {
    store,
    small,
    budget,
    fills,
    upstream: new UpstreamAccess({ retry: { attempts: 2, baseDelayMs: 200, maxDelayMs: 2000, budgetMs: 15_000 }, ...clientOptions, insecureRegistries: insecure }, metrics, options.directFromBytes),
    metrics,
    tags,
    revalidateTimeoutMs,
    down: new DownUpstreams(downHoldMs),
    sizes: new Map(),
    mediaTypes: new Map(),
    held,
    pending: new Map(),
    commits,
    warn,
    maxManifestBytes: options.maxManifestBytes ?? MAX_MANIFEST_BYTES,
    ...(auth !== undefined ? { auth } : {}),
    // the flattening pipeline (layer, vfs, lazy: ~70 modules) loads only for --prepare: a fresh process
    // compiles what it loads on V8's helper threads while its first clients are already being served
    ...(options.prepare === true ? { prepare: new (await import('./prepare.js')).Prebaker(cache, abort.signal, options.onPrepare) } : {}),
    ...(prefetch > 0 ? { prefetch: new Prefetcher(prefetch) } : {}),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    void handle(state, router, req, res, options.onAccess);
  };
  const server: Server = tls ? createHttps(tls, onRequest) : createHttp(onRequest);
  server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS; // beyond it new connections are closed at once
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // a large blob to a slow client may take long; idle sockets still time out
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new VmimgError(ErrorCode.IO, `cannot listen on ${hostname}:${port}: ${err.message}`, { cause: err })));
    server.listen(port, hostname, resolve);
  });
  const address = server.address() as AddressInfo;
  const host = `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  let stopping: Promise<void> | undefined;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}`,
    host,
    metrics,
    cacheBound: budget.limits,
    idle: async () => {
      await state.commits.idle();
      await state.prefetch?.idle();
      await state.fills.idle();
      await state.prepare?.idle();
      await state.fills.idle(); // what the prepares fetched
      await budget.idle();
      await tags.flush();
    },
    shutdown: () => (stopping ??= shutdown(server, options.shutdownGraceMs ?? 30_000, async () => {
      abort.abort(new VmimgError(ErrorCode.ABORTED, 'the server is shutting down'));
      await state.commits.idle(); // manifests answered are kept, or a warning says why not (e.g. a prune held the GC lock)
      await state.prepare?.idle();
      budget.stop();
      await budget.idle().catch(() => undefined);
      await tags.flush();
      await state.upstream.close();
      await auth?.close();
      await lease.release();
    })),
  };
}

async function shutdown(server: Server, graceMs: number, after: () => Promise<void>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
  await after();
}

/** ServeOptions.minFree, checked: its bytes given the cache's disk size (`"N%"` is a share of it). */
function parseMinFree(minFree: ServeOptions['minFree']): (diskBytes: number) => number {
  const spec = minFree ?? `${DEFAULT_MIN_FREE_FRACTION * 100}%`;
  if (typeof spec === 'number') {
    if (!Number.isSafeInteger(spec) || spec < 0) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `the free space kept must be a whole number of bytes or a percentage, not ${spec}`);
    return () => spec;
  }
  const m = /^(\d+(?:\.\d+)?)%$/.exec(spec.trim());
  const percent = m === null ? NaN : Number(m[1]);
  if (!(percent >= 0 && percent < 100)) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `the free space kept must be a percentage below 100% or a number of bytes, not "${spec}"`);
  return (diskBytes) => Math.floor((diskBytes * percent) / 100);
}

/** `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/i.exec(listen.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--listen "${listen}" is not HOST:PORT`);
  const hostname = m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]!);
  return { hostname, port };
}
