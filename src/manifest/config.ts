/** Image config parsing (OCI image config / Docker container image v1). */
import { validateDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits, documentTooLarge } from './limits.js';
import type { ContainerConfig, HistoryEntry, ImageConfig } from './types.js';
import { invalidManifest, isObject, optString, optStringArray, optStringMap, parseJson, type Json } from './validate.js';

const WHAT = 'image config';

/** Parses and validates an image config; `rootfs.diff_ids` are validated digests. */
export function parseImageConfig(bytes: Buffer): ImageConfig {
  const max = documentLimits().maxConfigBytes;
  if (bytes.length > max) throw documentTooLarge('maxConfigBytes', `${WHAT} is ${bytes.length} bytes; the limit is ${max} (maxConfigBytes)`);
  const doc = parseJson(bytes, WHAT);
  const architecture = optString(doc, 'architecture', WHAT);
  const os = optString(doc, 'os', WHAT);
  if (!architecture) throw invalidManifest(WHAT, 'has no "architecture"');
  if (!os) throw invalidManifest(WHAT, 'has no "os"');
  const variant = optString(doc, 'variant', WHAT);
  const osVersion = optString(doc, 'os.version', WHAT);
  const created = optString(doc, 'created', WHAT);
  const author = optString(doc, 'author', WHAT);
  const config = isPresent(doc.config) ? parseContainerConfig(doc.config) : undefined;
  const history = isPresent(doc.history) ? parseHistory(doc.history) : undefined;
  return {
    architecture,
    os,
    ...(variant ? { variant } : {}),
    ...(osVersion ? { 'os.version': osVersion } : {}),
    ...(created !== undefined ? { created } : {}),
    ...(author !== undefined ? { author } : {}),
    ...(config ? { config } : {}),
    rootfs: parseRootfs(doc.rootfs),
    ...(history ? { history } : {}),
  };
}

function isPresent(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function parseRootfs(v: unknown): ImageConfig['rootfs'] {
  const where = `${WHAT} rootfs`;
  if (!isObject(v)) throw invalidManifest(WHAT, 'has no "rootfs" object');
  const type = optString(v, 'type', where);
  if (type !== 'layers') throw invalidManifest(where, `type must be "layers", got ${JSON.stringify(v.type)}`);
  if (!Array.isArray(v.diff_ids)) throw invalidManifest(where, '"diff_ids" must be an array');
  const diffIds = v.diff_ids.map((d, i) => {
    if (typeof d !== 'string') throw invalidManifest(where, `diff_ids[${i}] must be a string`);
    try {
      return validateDigest(d);
    } catch (err) {
      throw invalidManifest(where, `diff_ids[${i}]: ${(err as Error).message}`, err);
    }
  });
  return { type, diff_ids: diffIds };
}

function parseContainerConfig(v: unknown): ContainerConfig {
  const where = `${WHAT} config`;
  if (!isObject(v)) throw invalidManifest(where, 'must be an object');
  const out: Record<string, unknown> = {};
  const strings = ['User', 'WorkingDir', 'StopSignal'] as const;
  for (const key of strings) {
    const s = optString(v, key, where);
    if (s !== undefined) out[key] = s;
  }
  const env = optStringArray(v, 'Env', where);
  if (env) out.Env = env;
  for (const key of ['Entrypoint', 'Cmd'] as const) {
    const list = strSlice(v, key, where);
    if (list) out[key] = list;
  }
  const labels = optStringMap(v, 'Labels', where);
  if (labels) out.Labels = labels;
  for (const key of ['ExposedPorts', 'Volumes'] as const) {
    if (!isPresent(v[key])) continue;
    if (!isObject(v[key])) throw invalidManifest(where, `"${key}" must be an object`);
    out[key] = v[key];
  }
  return out as ContainerConfig;
}

/** Docker's strslice: a JSON string means a one-element list; null means absent. */
function strSlice(v: Json, key: string, where: string): string[] | undefined {
  const value = v[key];
  if (typeof value === 'string') return [value];
  return optStringArray(v, key, where);
}

function parseHistory(v: unknown): HistoryEntry[] {
  if (!Array.isArray(v)) throw invalidManifest(WHAT, '"history" must be an array');
  return v.map((h, i) => {
    const where = `${WHAT} history[${i}]`;
    if (!isObject(h)) throw invalidManifest(where, 'must be an object');
    const entry: Record<string, unknown> = {};
    for (const key of ['created', 'created_by', 'author', 'comment'] as const) {
      const s = optString(h, key, where);
      if (s !== undefined) entry[key] = s;
    }
    if (isPresent(h.empty_layer)) {
      if (typeof h.empty_layer !== 'boolean') throw invalidManifest(where, '"empty_layer" must be a boolean');
      entry.empty_layer = h.empty_layer;
    }
    return entry as HistoryEntry;
  });
}
