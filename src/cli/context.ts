/**
 * What every command gets from the global options: the cache, the wanted platform, registry options,
 * the output mode, the progress listener and the Ctrl-C signal.
 */
// narrow imports, not the library's index: every process loads this module (commands/index.ts)
import { CacheLayout, resolveCacheDir } from '../image/cache.js';
import { parsePlatform, type Platform } from '../platform/index.js';
import { parseReference } from '../reference/index.js';
import type { RegistryClientOptions } from '../registry/index.js';
import { createProgress, type ProgressMode, type ProgressRenderer } from './progress.js';
import { readPasswordFromStdin } from './stdin.js';
import { loadUserConfig, type UserConfig } from '../config.js';
import { networkClientOptions } from '../config-network.js';
import { UsageError } from './exit-codes.js';

/** The global options as yargs hands them to a command. */
export interface GlobalArgs {
  'cache-dir'?: string;
  arch?: string;
  platform?: string;
  quiet?: boolean;
  json?: boolean;
  username?: string;
  'password-stdin'?: boolean;
  'insecure-registry'?: string[];
}

export interface Context {
  cache: CacheLayout;
  /** The platform asked for with --arch/--platform, if any. */
  platform?: Platform;
  json: boolean;
  quiet: boolean;
  signal: AbortSignal;
  /** Progress for one image preparation; call `done()` when it ends (either way). */
  progress(): ProgressRenderer;
  /** Registry client options for a reference (credentials are keyed by its registry). */
  registryOptions(reference?: string): Promise<RegistryClientOptions>;
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Runs `fn` when the command ends, either way (lazy images' readers and connections). */
  defer(fn: () => Promise<void>): void;
  /** Runs what was deferred, last first (the command runner calls it). */
  close(): Promise<void>;
}

let signal: AbortSignal = new AbortController().signal;

/** Set once by main: the signal Ctrl-C aborts. */
export function setInterruptSignal(s: AbortSignal): void {
  signal = s;
}

export function createContext(args: GlobalArgs): Context {
  const platformText = args.platform ?? args.arch;
  const json = args.json === true;
  const quiet = args.quiet === true;
  const mode: ProgressMode = quiet ? 'quiet' : json ? 'json' : process.stderr.isTTY ? 'tty' : 'log';
  let password: Promise<string> | undefined;
  const deferred: (() => Promise<void>)[] = [];
  return {
    cache: new CacheLayout(resolveCacheDir(args['cache-dir'] ? { cacheDir: args['cache-dir'] } : {})),
    ...(platformText !== undefined ? { platform: parsePlatform(platformText) } : {}),
    json,
    quiet,
    signal,
    progress: () => createProgress(mode),
    async registryOptions(reference) {
      const file = await loadUserConfig();
      const options: Omit<UserConfig, 'insecureRegistries' | 'network'> & RegistryClientOptions & {
        insecureRegistries?: string[];
        credentials?: Record<string, { username: string; password: string }>;
      } = {
        ...(file.mirrors ? { mirrors: file.mirrors } : {}),
        ...(file.originFallback !== undefined ? { originFallback: file.originFallback } : {}),
        ...networkClientOptions(file.network),
      };
      const insecure = [...(file.insecureRegistries ?? []), ...(args['insecure-registry'] ?? [])];
      if (insecure.length > 0) options.insecureRegistries = insecure;
      if (args['password-stdin'] && !args.username) throw new UsageError('--password-stdin needs --username');
      if (args.username !== undefined) {
        if (!args['password-stdin']) throw new UsageError('--username needs --password-stdin (passwords are never taken as arguments)');
        password ??= readPasswordFromStdin();
        const registry = reference !== undefined ? parseReference(reference).registry : undefined;
        if (registry !== undefined) options.credentials = { [registry]: { username: args.username, password: await password } };
      }
      return options;
    },
    out: (line) => process.stdout.write(`${line}\n`),
    defer: (fn) => void deferred.push(fn),
    async close() {
      for (const fn of deferred.splice(0).reverse()) await fn();
    },
  };
}

