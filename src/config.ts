/**
 * The user's vmimg config file: registry hosts settings that outlive one command.
 * `$VMIMG_CONFIG`, else `$XDG_CONFIG_HOME/vmimg/config.json`, else `~/.config/vmimg/config.json`:
 *
 *   {
 *     "mirrors": { "docker.io": ["https://mirror.example", { "url": "http://10.0.0.5:5000", "resolve": true }] },
 *     "insecureRegistries": ["registry.lan:5000"],
 *     "originFallback": true,
 *     "limits": { "maxLayerSize": "64G", "maxLayerRatio": 1000, "maxLayerEntries": 2000000, "maxManifestBytes": "8M" },
 *     "network": { "retryBudgetSeconds": 300, "minBytesPerSecond": 1024 }
 *   }
 *
 * `network` holds the retry budget, throughput rule and timeouts (src/config-network.ts).
 *
 * A missing file is an empty config; a malformed one is ERR_INVALID_ARGUMENT naming the file.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from './errors.js';
import type { HostOptions, MirrorSpec } from './registry/index.js';
import { DEFAULT_LIMITS, parseSize, resolveLimits, type LayerLimits } from './layer/limits.js';
import { DEFAULT_DOCUMENT_LIMITS, resolveDocumentLimits, type DocumentLimits } from './manifest/limits.js';
import { parseNetworkSettings, type NetworkSettings } from './config-network.js';
import { durationMs } from './util/duration.js';

export type UserConfig = Pick<HostOptions, 'mirrors' | 'insecureRegistries' | 'originFallback'> & {
  /**
   * What one layer may cost (src/layer/limits.ts) and the manifest/config sizes and index walk bounds
   * (src/manifest/limits.ts); sizes as bytes or strings such as "64G", times (`…Ms`) as milliseconds or
   * strings such as "10s".
   */
  limits?: Partial<LayerLimits & DocumentLimits>;
  /** Retry budget, throughput rule and timeouts (src/config-network.ts). */
  network?: NetworkSettings;
};

export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMIMG_CONFIG) return env.VMIMG_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'vmimg', 'config.json');
}

export async function loadUserConfig(env: NodeJS.ProcessEnv = process.env): Promise<UserConfig> {
  const path = userConfigPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw bad(path, (err as Error).message);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bad(path, `not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad(path, 'must be a JSON object');
  const { mirrors, insecureRegistries, originFallback, limits, network, ...rest } = doc as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw bad(path, `unknown setting(s) ${unknown.join(', ')} (known: mirrors, insecureRegistries, originFallback, limits, network)`);
  const config: { -readonly [K in keyof UserConfig]: UserConfig[K] } = {};
  if (limits !== undefined) config.limits = parseLimits(limits, path);
  if (mirrors !== undefined) config.mirrors = parseMirrors(mirrors, path);
  if (insecureRegistries !== undefined) {
    if (!Array.isArray(insecureRegistries) || !insecureRegistries.every((h) => typeof h === 'string')) {
      throw bad(path, '"insecureRegistries" must be a list of host[:port] strings');
    }
    config.insecureRegistries = insecureRegistries;
  }
  if (originFallback !== undefined) {
    if (typeof originFallback !== 'boolean') throw bad(path, '"originFallback" must be true or false');
    config.originFallback = originFallback;
  }
  if (network !== undefined) config.network = parseNetworkSettings(network, (why) => bad(path, why));
  return config;
}

function parseMirrors(value: unknown, path: string): Record<string, (string | MirrorSpec)[]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(path, '"mirrors" must map registry names to lists');
  const out: Record<string, (string | MirrorSpec)[]> = {};
  for (const [registry, list] of Object.entries(value)) {
    const ok =
      Array.isArray(list) &&
      list.every((m) => typeof m === 'string' || (typeof m === 'object' && m !== null && typeof (m as MirrorSpec).url === 'string'));
    if (!ok) throw bad(path, `"mirrors"."${registry}" must be a list of URLs or {"url", "resolve"} objects`);
    out[registry] = list as (string | MirrorSpec)[];
  }
  return out;
}

/** `"limits"`: known keys only; sizes as bytes or "64G"-style strings, the ratio and counts as numbers. */
function parseLimits(value: unknown, path: string): Partial<LayerLimits & DocumentLimits> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(path, '"limits" must be an object');
  const out: Partial<LayerLimits & DocumentLimits> = {};
  const known = [...Object.keys(DEFAULT_LIMITS), ...Object.keys(DEFAULT_DOCUMENT_LIMITS)];
  for (const [key, v] of Object.entries(value)) {
    if (!known.includes(key)) throw bad(path, `unknown limit "${key}" (known: ${known.join(', ')})`);
    const k = key as keyof (LayerLimits & DocumentLimits);
    try {
      out[k] = typeof v !== 'string' ? (v as number) : key.endsWith('Ms') ? parseDuration(v, `"limits"."${key}"`) : parseSize(v, `"limits"."${key}"`);
      if (key in DEFAULT_LIMITS) resolveLimits({ [k]: out[k] });
      else resolveDocumentLimits({ [k]: out[k] });
    } catch (err) {
      throw bad(path, (err as Error).message);
    }
  }
  return out;
}

/** A time limit (the `…Ms` keys) written as `"10s"`, `"500ms"`, `"2min"`, `"1h"` or a number of milliseconds, in ms. */
function parseDuration(text: string, what: string): number {
  const ms = durationMs(text, 'ms');
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${what} must be a time such as 10s, 500ms or 2min, not "${text}"`);
  return ms;
}

function bad(path: string, why: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_ARGUMENT, `config file ${path}: ${why}`);
}
