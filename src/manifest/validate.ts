/** Field-level validation shared by manifests, indexes and configs. */
import { validateDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { normalizePlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import type { Descriptor } from './types.js';

export type Json = Record<string, unknown>;

export function invalidManifest(what: string, why: string, cause?: unknown): VmimgError {
  return new VmimgError(ErrorCode.INVALID_MANIFEST, `${what}: ${why}`, cause === undefined ? {} : { cause });
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseJson(bytes: Buffer, what: string): Json {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalidManifest(what, `not valid JSON (${(err as Error).message})`, err);
  }
  if (!isObject(doc)) throw invalidManifest(what, 'expected a JSON object');
  return doc;
}

export function optString(obj: Json, key: string, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidManifest(where, `"${key}" must be a string`);
  return v;
}

export function optStringArray(obj: Json, key: string, where: string): string[] | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw invalidManifest(where, `"${key}" must be an array of strings`);
  }
  return v as string[];
}

export function optStringMap(obj: Json, key: string, where: string): Record<string, string> | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    throw invalidManifest(where, `"${key}" must be an object of strings`);
  }
  return v as Record<string, string>;
}

/** Validates a content descriptor: media type, digest (before it can name a file), size. */
export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalidManifest(where, 'descriptor must be an object');
  const mediaType = optString(v, 'mediaType', where);
  if (mediaType === undefined || mediaType === '') throw invalidManifest(where, 'descriptor has no mediaType');
  const digest = v.digest;
  if (typeof digest !== 'string') throw invalidManifest(where, 'descriptor has no digest');
  try {
    validateDigest(digest);
  } catch (err) {
    throw invalidManifest(where, (err as Error).message, err);
  }
  const size = v.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalidManifest(where, `descriptor size must be a non-negative integer, got ${JSON.stringify(size)}`);
  }
  const annotations = optStringMap(v, 'annotations', where);
  const urls = optStringArray(v, 'urls', where);
  const platform = v.platform === undefined || v.platform === null ? undefined : parseDescriptorPlatform(v.platform, where);
  return {
    mediaType,
    digest,
    size,
    ...(platform ? { platform } : {}),
    ...(annotations ? { annotations } : {}),
    ...(urls ? { urls } : {}),
  };
}

function parseDescriptorPlatform(v: unknown, where: string): Platform {
  const at = `${where}.platform`;
  if (!isObject(v)) throw invalidManifest(at, 'must be an object');
  const architecture = optString(v, 'architecture', at);
  const os = optString(v, 'os', at);
  if (!architecture || !os) throw invalidManifest(at, 'needs "architecture" and "os"');
  const variant = optString(v, 'variant', at);
  const osVersion = optString(v, 'os.version', at);
  return normalizePlatform({
    os,
    architecture,
    ...(variant ? { variant } : {}),
    ...(osVersion ? { osVersion } : {}),
  });
}
