/**
 * The config file's `"network"` section: the retry budget, the throughput rule, timeouts. In seconds
 * for people; turned into RegistryClientOptions (milliseconds) by `networkClientOptions`.
 *
 *   "network": { "retryAttempts": 5, "retryBudgetSeconds": 300, "idleTimeoutSeconds": 30,
 *                "minBytesPerSecond": 1024, "throughputWindowSeconds": 30, "stallNoticeSeconds": 5,
 *                "credentialHelperTimeoutSeconds": 30 }
 */
import type { RegistryClientOptions } from './registry/index.js';

/** The `"network"` section as read (seconds; every key optional, defaults in util/retry.ts and util/throughput.ts). */
export interface NetworkSettings {
  /** Attempts in a row without progress per operation (a manifest, a blob). */
  readonly retryAttempts?: number;
  /** Time one operation may spend failing (failed attempts plus waits); a longer Retry-After fails at once. */
  readonly retryBudgetSeconds?: number;
  /** Longest wait for a response's headers, or between two chunks of a body. */
  readonly idleTimeoutSeconds?: number;
  /** A body averaging less than this over `throughputWindowSeconds` is cut and resumed (0 = off). */
  readonly minBytesPerSecond?: number;
  readonly throughputWindowSeconds?: number;
  /** Say so after this long without a byte. */
  readonly stallNoticeSeconds?: number;
  /** Kill a docker-credential-* helper (and what it started) after this long. */
  readonly credentialHelperTimeoutSeconds?: number;
}

const KEYS: Record<keyof NetworkSettings, { min: number; integer?: boolean }> = {
  retryAttempts: { min: 1, integer: true },
  retryBudgetSeconds: { min: 0.001 },
  idleTimeoutSeconds: { min: 0.001 },
  minBytesPerSecond: { min: 0 },
  throughputWindowSeconds: { min: 0.001 },
  stallNoticeSeconds: { min: 0.001 },
  credentialHelperTimeoutSeconds: { min: 0.001 },
};

/** Checks the section; `bad(why)` makes the error naming the file. */
export function parseNetworkSettings(value: unknown, bad: (why: string) => Error): NetworkSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('"network" must be a JSON object');
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(value)) {
    const rule = KEYS[key as keyof NetworkSettings];
    if (rule === undefined) throw bad(`unknown setting "network"."${key}" (known: ${Object.keys(KEYS).join(', ')})`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < rule.min || (rule.integer === true && !Number.isInteger(v))) {
      throw bad(`"network"."${key}" must be a ${rule.integer === true ? 'whole ' : ''}number of at least ${rule.min}`);
    }
    out[key] = v;
  }
  return out as NetworkSettings;
}

/** The settings as client options (only those given). */
export function networkClientOptions(n: NetworkSettings | undefined): Pick<RegistryClientOptions, 'retry' | 'throughput' | 'idleTimeoutMs' | 'helperTimeoutMs'> {
  if (n === undefined) return {};
  const ms = (s: number | undefined) => (s === undefined ? undefined : Math.round(s * 1000));
  const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  const retry = defined({ attempts: n.retryAttempts, budgetMs: ms(n.retryBudgetSeconds) });
  const throughput = defined({ minBytesPerSecond: n.minBytesPerSecond, windowMs: ms(n.throughputWindowSeconds), stallNoticeMs: ms(n.stallNoticeSeconds) });
  return defined({
    ...(Object.keys(retry).length > 0 ? { retry } : {}),
    ...(Object.keys(throughput).length > 0 ? { throughput } : {}),
    idleTimeoutMs: ms(n.idleTimeoutSeconds),
    helperTimeoutMs: ms(n.credentialHelperTimeoutSeconds),
  });
}
