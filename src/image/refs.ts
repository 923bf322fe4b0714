/**
 * `refs.json`: which names point at which image (by config digest) on each platform, and the most
 * recent image (what `vmimg export DIR` uses when no image is named). Every change is a
 * read-modify-write under `locks/refs.lock` and an atomic replace, so concurrent pulls and loads never
 * lose each other's names.
 *
 * One name holds one image per platform (`pull alpine --arch amd64` then `--arch arm64` keeps both).
 * The file stays version 1: `image` is still the name's most recent image (what older vmimg reads),
 * and `platforms` is an added map older code ignores.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configPlatform } from '../manifest/index.js';
import { formatPlatform, normalizePlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { waitLock } from '../store/lock.js';
import type { CacheLayout } from './cache.js';
import { writeFileAtomic } from './image-dir.js';
import type { ImageSourceInfo, LayerRecord, RuntimeConfig } from './runtime-config.js';

/**
 * How a name's image arrived. Image dirs are one per config digest and their `config.json` records the
 * latest arrival only, so a pull and a `docker save` load of one image would otherwise share one
 * `source`: each name keeps its own (the pulled name its manifest and gzip layer digests).
 */
export interface Arrival {
  source: ImageSourceInfo;
  /** Per layer, bottom first: the blob digest and size as this source distributed it (when known). */
  layers: Pick<LayerRecord, 'digest' | 'compressedSize'>[];
}

export interface RefTarget {
  /** Config digest: the image id. */
  image: string;
  /** ISO time the name was last pointed here. */
  updatedAt: string;
  /** How the image arrived under this name (absent in files of older vmimg: `config.json`'s `source` holds). */
  arrival?: Arrival;
}

/** `config` as the image arrived under a name (`target.arrival`), else as its `config.json` says. */
export function configAsArrived(config: RuntimeConfig, target: RefTarget | undefined): RuntimeConfig {
  const arrival = target?.arrival;
  if (typeof arrival?.source !== 'object' || !Array.isArray(arrival.layers) || arrival.layers.length !== config.layerDetails.length) return config;
  const layerDetails = config.layerDetails.map(({ digest: _d, compressedSize: _c, ...rest }, i) => ({ ...rest, ...arrival.layers[i] }));
  return { ...config, source: arrival.source, layerDetails };
}

/** The arrival a freshly prepared image's runtime config describes. */
export function arrivalOf(config: RuntimeConfig): Arrival {
  const layers = config.layerDetails.map(({ digest, compressedSize }) => ({ ...(digest !== undefined ? { digest } : {}), ...(compressedSize !== undefined ? { compressedSize } : {}) }));
  return { source: config.source, layers };
}

/** What an arrival references in the store (manifest, indexes, layer blobs): prune keeps them. */
export function arrivalDigests(arrival: Arrival | undefined): string[] {
  if (typeof arrival !== 'object' || arrival === null) return [];
  const s = arrival.source ?? {};
  const layers = Array.isArray(arrival.layers) ? arrival.layers : [];
  const indexes = Array.isArray(s.indexDigests) ? s.indexDigests : [];
  return [s.manifestDigest, s.indexDigest, ...indexes, ...layers.map((l) => l?.digest)].filter((d): d is string => typeof d === 'string');
}

export interface RefEntry extends RefTarget {
  /** Normalised platform (`linux/arm64/v8`) → the image the name means there. Absent in files of older vmimg. */
  platforms?: Record<string, RefTarget>;
}

/** The key a platform is filed under: normalised, so `linux/arm64` and `linux/arm64/v8` are one. */
export function platformKey(p: Platform): string {
  return formatPlatform(normalizePlatform(p));
}

/** Every image a name points at, most recent first (an entry of older vmimg has one). */
export function entryTargets(entry: RefEntry): RefTarget[] {
  const all = [...Object.values(entry.platforms ?? {}), { image: entry.image, updatedAt: entry.updatedAt, ...(entry.arrival ? { arrival: entry.arrival } : {}) }];
  const seen = new Set<string>();
  return all
    .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
    .filter((t) => typeof t?.image === 'string' && !seen.has(t.image) && seen.add(t.image));
}

export interface Refs {
  version: 1;
  refs: Record<string, RefEntry>;
  /** Config digest of the image most recently pulled or loaded. */
  last?: string;
}

export async function readRefs(cache: CacheLayout): Promise<Refs> {
  try {
    const parsed = JSON.parse(await readFile(cache.refsFile, 'utf8')) as Refs;
    if (parsed?.version === 1 && typeof parsed.refs === 'object' && parsed.refs !== null) return parsed;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, refs: {} };
  }
  // Damaged (or from an unknown version): every image dir records the name it came by.
  return rebuildRefs(cache);
}

/** refs.json as the image dirs' own records say (`source.reference`, platform, time): what a damaged file held. */
async function rebuildRefs(cache: CacheLayout): Promise<Refs> {
  const refs: Refs = { version: 1, refs: {} };
  const found: { name?: string; image: string; platform: string; updatedAt: string }[] = [];
  for (const hex of await readdir(cache.imagesDir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    try {
      const config = JSON.parse(await readFile(join(cache.imagesDir, hex, 'config.json'), 'utf8')) as RuntimeConfig;
      found.push({ name: config.source.reference, image: `sha256:${hex}`, platform: platformKey(configPlatform(config)), updatedAt: config.source.createdAt });
    } catch {
      // not an image (yet), or damaged too
    }
  }
  found.sort((a, b) => a.updatedAt.localeCompare(b.updatedAt)); // oldest first: the newest wins each name
  for (const f of found) {
    const target = { image: f.image, updatedAt: f.updatedAt };
    if (f.name) refs.refs[f.name] = { ...target, platforms: { ...refs.refs[f.name]?.platforms, [f.platform]: target } };
    refs.last = f.image;
  }
  return refs;
}

/** Held for one read-modify-write (milliseconds); a holder that died is detected by its pid. */
const REFS_LOCK_STALE_MS = 10_000;

/**
 * Applies `change` to refs.json under the refs lock: read, change, write to a temp file, rename.
 * Returns what `change` returned.
 */
export async function updateRefs<T>(cache: CacheLayout, change: (refs: Refs) => T | Promise<T>): Promise<T> {
  await mkdir(cache.locksDir, { recursive: true });
  const lock = await waitLock(join(cache.locksDir, 'refs.lock'), { staleMs: REFS_LOCK_STALE_MS, what: 'the refs.json lock' });
  try {
    const refs = await readRefs(cache);
    const result = await change(refs);
    await writeFileAtomic(cache.refsFile, `${JSON.stringify(refs, null, 2)}\n`);
    return result;
  } finally {
    await lock.release();
  }
}

/**
 * Points `name` at an image for its platform (`platform`: a platformKey), keeping the name's images for
 * other platforms, and makes it the most recent image. `arrival`: how it came under this name.
 * Returns the name's previous target for the platform when it came by another source (a load under the
 * name of a pull, say): the name now means the new arrival, as `docker load` re-tags, and the caller
 * says so (`takeoverMessage`).
 */
export async function recordImage(cache: CacheLayout, name: string, configDigest: string, platform?: string, arrival?: Arrival): Promise<RefTarget | undefined> {
  return updateRefs(cache, async (refs) => {
    const target: RefTarget = { image: configDigest, updatedAt: new Date().toISOString(), ...(arrival ? { arrival } : {}) };
    const old = refs.refs[name];
    const platforms = old ? await platformsOf(cache, old) : {};
    const before = platform !== undefined ? platforms[platform] : undefined;
    if (platform !== undefined) platforms[platform] = target;
    // the arrival is kept once: in the platform's target when there is one
    const { arrival: _, ...top } = target;
    refs.refs[name] = Object.keys(platforms).length > 0 ? { ...top, platforms } : target;
    refs.last = configDigest;
    return before?.arrival !== undefined && arrival !== undefined && sourceOf(before.arrival) !== sourceOf(arrival) ? before : undefined;
  });
}

/** Where an arrival came from, in words: `pulled from REF`, `loaded from PATH`. */
function sourceOf(arrival: Arrival): string {
  const s = arrival.source;
  if (s.kind === 'registry') return `pulled from ${s.reference ?? 'a registry'}`;
  const what = s.kind === 'docker-archive' ? 'the docker save tar' : s.kind === 'oci-archive' ? 'the OCI archive' : s.kind === 'oci-layout' ? 'the OCI layout' : 'the cache';
  return `loaded from ${what} ${s.path ?? s.reference ?? ''}`.trimEnd();
}

/** What a user reads when `name` changed hands (recordImage's answer): which source it means now, and which before. */
export function takeoverMessage(name: string, before: RefTarget, now: Arrival, nowImage: string): string {
  const same = before.image === nowImage ? 'the same image' : `image ${before.image.slice(7, 19)}`;
  const noManifest = now.source.kind === 'docker-archive' && now.source.manifestDigest === undefined ? ' (a classic docker save holds no manifest: a push of the name builds one over its layers)' : '';
  return `${name} now names the image ${sourceOf(now)}${noManifest}; it named ${same} ${sourceOf(before.arrival!)} before`;
}

/** An entry's per-platform map; for an entry of older vmimg, its one image filed under its platform. */
async function platformsOf(cache: CacheLayout, entry: RefEntry): Promise<Record<string, RefTarget>> {
  if (entry.platforms) return { ...entry.platforms };
  try {
    const config = JSON.parse(await readFile(join(cache.imageDir(entry.image), 'config.json'), 'utf8')) as Parameters<typeof configPlatform>[0];
    return { [platformKey(configPlatform(config))]: { image: entry.image, updatedAt: entry.updatedAt } };
  } catch {
    return {}; // the image is gone or damaged: nothing to keep
  }
}
