import type { CommandModule } from 'yargs';
import { startServe, DEFAULT_LISTEN, type PrepareRecord } from '../../serve/index.js';
import type { GlobalArgs } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { formatBytes, parseSize } from '../../layer/limits.js';
import { durationMs } from '../../util/duration.js';
import { run } from './common.js';
import { warn } from '../resolve-image.js';
import { ONE_PER_FLAG } from '../usage.js';

interface Args {
  listen: string;
  upstream?: string;
  route?: string[];
  insecure?: boolean;
  'tls-cert'?: string;
  'tls-key'?: string;
  htpasswd?: string;
  prepare?: boolean;
  'tag-ttl'?: string;
  'shutdown-grace'?: string;
  'revalidate-timeout'?: string;
  'down-hold'?: string;
  'max-connections'?: number;
  'max-login-checks'?: number;
  'max-login-queue'?: number;
  prefetch?: number;
  'max-cache-size'?: string;
  'min-free'?: string;
}

export const serveCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'serve',
  describe: 'Serve the cache as a pull-through caching registry (read-only)',
  builder: (y) =>
    y
      .option('listen', { type: 'string', default: DEFAULT_LISTEN, describe: 'HOST:PORT to listen on' })
      .option('upstream', { type: 'string', describe: 'Registry URL for unprefixed repositories (http(s)://HOST[:PORT])' })
      .option('route', { type: 'string', array: true, ...ONE_PER_FLAG, describe: 'PREFIX=URL: /v2/PREFIX/repo/... goes to URL as repo (repeatable)' })
      .option('insecure', { type: 'boolean', describe: 'Allow plain HTTP on a non-loopback address' })
      .option('tls-cert', { type: 'string', describe: 'PEM certificate for HTTPS' })
      .option('tls-key', { type: 'string', describe: 'PEM private key for HTTPS' })
      .option('htpasswd', { type: 'string', describe: 'Require HTTP Basic logins checked against this htpasswd file (bcrypt: htpasswd -B)' })
      .option('max-login-checks', { type: 'number', describe: 'bcrypt login checks at once (default 2)' })
      .option('max-login-queue', { type: 'number', describe: 'Login checks waiting for a turn (default 16); more are answered 429' })
      .option('prepare', { type: 'boolean', describe: 'Flatten images into the cache as they are pulled through, and serve their layer indexes as referrers (for pull --lazy)' })
      .option('prefetch', { type: 'number', describe: 'Blob downloads started ahead of clients once an image manifest is sent (default 3; 0: only what clients ask)' })
      .option('tag-ttl', { type: 'string', describe: 'How long a tag is trusted before one HEAD revalidates it: seconds, or 10s, 500ms, 5min, 1h (default 300)' })
      .option('max-connections', { type: 'number', describe: 'Client connections at once (default 256; each may hold a 1 MiB buffer)' })
      .option('revalidate-timeout', { type: 'string', describe: 'How long revalidating a tag waits for the upstream before the last known digest is served, with a Warning: seconds or with a unit (default 3)' })
      .option('down-hold', { type: 'string', describe: 'How long an upstream found down by a revalidation is left alone: its known tags are served stale at once (default 10 s; 0: ask every time)' })
      .option('max-cache-size', { type: 'string', describe: 'Bytes of blobs the cache may hold (e.g. 200G); past it the least recently served go (default: no bound but --min-free)' })
      .option('min-free', { type: 'string', describe: 'Free space kept on the cache\'s disk, a size or a percentage (default 5%; 0: none); below it the least recently served blobs go' })
      .option('shutdown-grace', { type: 'string', describe: 'How long in-flight answers get to finish on SIGTERM: seconds or with a unit (default 30)' })
      .hide('arch') // global options that mean nothing here: serve answers whatever platform a client asks for
      .hide('platform')
      .example('$0 serve --upstream https://registry-1.docker.io', 'A Docker Hub mirror on 127.0.0.1:5050')
      .example('$0 serve --listen 0.0.0.0:5050 --tls-cert c.pem --tls-key k.pem --route ghcr=https://ghcr.io', 'HTTPS for a fleet'),
  handler: run<Args>(async (ctx, args) => {
    if ((args['tls-cert'] === undefined) !== (args['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    const ttl = durationFlag(args['tag-ttl'], 'tag-ttl');
    const revalidate = durationFlag(args['revalidate-timeout'], 'revalidate-timeout', true);
    const downHold = durationFlag(args['down-hold'], 'down-hold');
    const grace = durationFlag(args['shutdown-grace'], 'shutdown-grace');
    const max = args['max-connections'];
    const whole = (name: keyof Args, least: number): number | undefined => {
      const v = args[name] as number | undefined;
      if (v !== undefined && !(Number.isInteger(v) && v >= least)) throw new UsageError(`--${name} must be a whole number of at least ${least}, not ${String(v)}`);
      return v;
    };
    whole('max-connections', 1);
    const maxChecks = whole('max-login-checks', 1);
    const maxQueue = whole('max-login-queue', 0);
    const prefetch = whole('prefetch', 0);
    const maxCacheBytes = args['max-cache-size'] !== undefined ? sizeFlag(args['max-cache-size']) : undefined;
    const minFree = args['min-free'] !== undefined ? minFreeFlag(args['min-free']) : undefined;
    const registry = await ctx.registryOptions();
    const server = await startServe({
      cacheDir: ctx.cache.root,
      listen: args.listen,
      ...(args.upstream !== undefined ? { upstream: args.upstream } : {}),
      routes: args.route ?? [],
      insecure: args.insecure === true,
      ...(args.htpasswd !== undefined ? { htpasswd: args.htpasswd } : {}),
      ...(args['tls-cert'] !== undefined ? { tls: { cert: args['tls-cert'], key: args['tls-key']! } } : {}),
      ...(ttl !== undefined ? { tagTtlMs: ttl } : {}),
      ...(revalidate !== undefined ? { revalidateTimeoutMs: revalidate } : {}),
      ...(downHold !== undefined ? { downHoldMs: downHold } : {}),
      ...(grace !== undefined ? { shutdownGraceMs: grace } : {}),
      ...(max !== undefined ? { maxConnections: max } : {}),
      ...(prefetch !== undefined ? { prefetch } : {}),
      ...(maxCacheBytes !== undefined ? { maxCacheBytes } : {}),
      ...(minFree !== undefined ? { minFree } : {}),
      loginLimits: { ...(maxChecks !== undefined ? { maxChecks } : {}), ...(maxQueue !== undefined ? { maxQueue } : {}) },
      registry,
      onAccess: (r) => ctx.out(JSON.stringify(r)),
      onWarning: (m) => warn(ctx, m),
      ...(args.prepare === true ? { prepare: true, onPrepare: (r: PrepareRecord) => ctx.out(JSON.stringify(r)) } : {}),
    });
    const { maxBytes, minFreeBytes } = server.cacheBound;
    const bound = [...(maxBytes !== undefined ? [`at most ${formatBytes(maxBytes)} of blobs`] : []), ...(minFreeBytes > 0 ? [`keeping ${formatBytes(minFreeBytes)} free`] : [])];
    process.stderr.write(`vmimg: serving ${ctx.cache.root} on ${server.url}${bound.length > 0 ? ` (${bound.join(', ')})` : ''}\n`);
    // main turns SIGINT/SIGTERM/SIGHUP into this abort; a second signal still quits at once
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    process.stderr.write('vmimg: shutting down: finishing answers in flight\n');
    await server.shutdown();
    // For a server SIGTERM (systemd, Kubernetes) and Ctrl-C in a terminal are the normal ways to stop:
    // a clean end, exit 0, not a pull's "interrupted, rerun to continue"
    const reason = ctx.signal.reason as { details?: { signal?: string } } | undefined;
    if (reason?.details?.signal === 'SIGTERM' || reason?.details?.signal === 'SIGINT') process.exit(0);
  }),
};

/** `--min-free`: a percentage of the cache's disk below 100 (`10%`), a size (`20G`), or 0 for no floor. */
function minFreeFlag(text: string): number | `${number}%` {
  const t = text.trim();
  const bad = (): UsageError => new UsageError(`--min-free must be a size such as 20G, a percentage below 100% such as 10%, or 0, not "${text}"`);
  if (/^0*(?:\.0*)?\s*[kmgtpe]?i?b?$/i.test(t) && /0/.test(t)) return 0; // 0, 00, 0G: no floor
  if (!t.endsWith('%')) {
    try {
      return parseSize(t, '--min-free');
    } catch {
      throw bad();
    }
  }
  const percent = /^\d+(?:\.\d+)?%$/.test(t) ? Number(t.slice(0, -1)) : NaN;
  if (!(percent < 100)) throw bad();
  return t as `${number}%`;
}

/** A time flag in ms: a number of seconds (`30`, `0.5`) or a number with a unit (`500ms`, `10s`, `5min`, `1h`); `positive`: 0 refused. */
function durationFlag(text: string | undefined, name: string, positive = false): number | undefined {
  if (text === undefined) return undefined;
  const ms = durationMs(String(text), 's');
  if (!Number.isSafeInteger(ms) || ms > 2 ** 31 - 1 || (positive && ms === 0)) {
    throw new UsageError(`--${name} must be ${positive ? 'more than 0: ' : ''}seconds, or a time such as 500ms, 10s, 5min or 1h (at most 24 days), not "${String(text)}"`);
  }
  return ms;
}

/** `--max-cache-size`: a size such as 200G; 0 would keep nothing. */
function sizeFlag(text: string): number {
  try {
    return parseSize(text, '--max-cache-size');
  } catch {
    throw new UsageError(`--max-cache-size must be a size such as 200G, 512M or 4096 (leave it out for no size bound), not "${text}"`);
  }
}
