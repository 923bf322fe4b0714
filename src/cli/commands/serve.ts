import type { CommandModule } from 'yargs';
import { startServe, DEFAULT_LISTEN, type PrepareRecord } from '../../serve/index.js';
import type { GlobalArgs } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { parseSize } from '../../layer/limits.js';
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
  'tag-ttl'?: number;
  'shutdown-grace'?: number;
  'revalidate-timeout'?: number;
  'down-hold'?: number;
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
      .option('tag-ttl', { type: 'number', describe: 'Seconds a tag is trusted before one HEAD revalidates it (default 300)' })
      .option('max-connections', { type: 'number', describe: 'Client connections at once (default 256; each may hold a 1 MiB buffer)' })
      .option('revalidate-timeout', { type: 'number', describe: 'Seconds revalidating a tag waits for the upstream before the last known digest is served, with a Warning (default 3)' })
      .option('down-hold', { type: 'number', describe: 'Seconds an upstream found down by a revalidation is left alone: its known tags are served stale at once (default 10; 0: ask every time)' })
      .option('max-cache-size', { type: 'string', describe: 'Bytes of blobs the cache may hold (e.g. 200G); past it the least recently served go (default: no bound but --min-free)' })
      .option('min-free', { type: 'string', describe: 'Free space kept on the cache\'s disk, a size or a percentage (default 5%; 0: none); below it the least recently served blobs go' })
      .option('shutdown-grace', { type: 'number', describe: 'Seconds in-flight answers get to finish on SIGTERM (default 30)' })
      .hide('arch') // global options that mean nothing here: serve answers whatever platform a client asks for
      .hide('platform')
      .example('$0 serve --upstream https://registry-1.docker.io', 'A Docker Hub mirror on 127.0.0.1:5050')
      .example('$0 serve --listen 0.0.0.0:5050 --tls-cert c.pem --tls-key k.pem --route ghcr=https://ghcr.io', 'HTTPS for a fleet'),
  handler: run<Args>(async (ctx, args) => {
    if ((args['tls-cert'] === undefined) !== (args['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    const seconds = (v: number | undefined, name: string): number | undefined => {
      if (v === undefined) return undefined;
      if (!(v >= 0)) throw new UsageError(`--${name} must be a number of seconds, not ${String(v)}`);
      return v * 1000;
    };
    const ttl = seconds(args['tag-ttl'], 'tag-ttl');
    const revalidate = seconds(args['revalidate-timeout'], 'revalidate-timeout');
    const downHold = seconds(args['down-hold'], 'down-hold');
    const grace = seconds(args['shutdown-grace'], 'shutdown-grace');
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
    const maxCacheBytes = args['max-cache-size'] !== undefined ? parseSize(args['max-cache-size'], '--max-cache-size') : undefined;
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
      ...(downHold !== undefined ? { downHoldMs: Math.round(downHold) } : {}),
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
    process.stderr.write(`vmimg: serving ${ctx.cache.root} on ${server.url}\n`);
    // main turns SIGINT/SIGTERM/SIGHUP into this abort; a second signal still quits at once
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    process.stderr.write('vmimg: shutting down: finishing answers in flight\n');
    await server.shutdown();
    // For a server SIGTERM is the normal way to stop (systemd, Kubernetes): a clean end, exit 0.
    const reason = ctx.signal.reason as { details?: { signal?: string } } | undefined;
    if (reason?.details?.signal === 'SIGTERM') process.exit(0);
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
