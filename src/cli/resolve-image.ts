/**
 * Turns an IMAGE argument into a prepared image. A path (image-arg.ts decides) is an image directory
 * (used in place) or an image tar (loaded into the cache); a missing path is ERR_NOT_FOUND. A name is
 * a cached image's name or id (when `cached` is allowed), else a registry reference (pulled).
 */
// Narrow imports: reading a cached image must not load the pull and load pipelines (every
// `vmimg ls`/`cat` would pay for them); those are imported when an image is pulled or loaded.
import { ErrorCode, isVmimgError } from '../errors.js';
import { createMatcher, formatPlatform, hostPlatform } from '../platform/index.js';
import { parseReference } from '../reference/index.js';
import { findImage, listImages } from '../image/catalog.js';
import { hasLazyLayers, loadFromDir, type Image } from '../image/image-dir.js';
import { loadUserConfig } from '../config.js';
import type { LayerLimits } from '../layer/limits.js';
import type { PullOptions } from '../image/pull.js';
import type { LoadOptions } from '../image/load.js';
import { configPlatform } from '../manifest/index.js';
import type { Context } from './context.js';
import { cachedPathNames, classifyImageArg } from './image-arg.js';
import { escapeTerminal } from './escape.js';
import type { NetworkNotice } from '../util/retry.js';

export interface ResolveOptions {
  /** Look the argument up among cached images before pulling (default true). */
  cached?: boolean;
}

export type ImageKind = 'dir' | 'tar' | 'layout' | 'cached' | 'registry';

export interface ResolvedImage {
  image: Image;
  kind: ImageKind;
  /** Names the cache knows the image by (empty for an image directory outside it). */
  names: string[];
}

export async function resolveImage(ctx: Context, arg: string, options: ResolveOptions = {}): Promise<ResolvedImage> {
  return readable(ctx, await resolveAny(ctx, arg, options));
}

async function resolveAny(ctx: Context, arg: string, options: ResolveOptions): Promise<ResolvedImage> {
  if (options.cached !== false) {
    const byName = await cachedByPathName(ctx, arg);
    if (byName !== undefined) return named(ctx, byName, 'cached');
  }
  const a = await classifyImageArg(arg);
  if (a.kind === 'path') {
    if (a.type === 'dir') return { image: await loadFromDir(a.path, platformOption(ctx)), kind: 'dir', names: [] };
    if (a.type === 'layout') return named(ctx, await loadTar(ctx, a.path, a.tag, {}, 'layout'), 'layout');
    return named(ctx, await loadTar(ctx, a.path, a.tag), 'tar');
  }
  if (options.cached !== false) {
    const hit = await findCached(ctx, a.name);
    if (hit !== undefined) return named(ctx, hit, 'cached');
  }
  return named(ctx, await pullImage(ctx, a.name), 'registry');
}

/** The image a command names, or with no argument the most recently pulled or loaded one. */
export async function resolveImageOrLast(ctx: Context, arg: string | undefined): Promise<ResolvedImage> {
  if (arg !== undefined && arg !== '') return resolveImage(ctx, arg);
  return readable(ctx, await named(ctx, await findImage(ctx.cache, undefined, ctx.platform), 'cached'));
}

/** A lazily pulled image, with the readers that fetch its files as they are read (closed when the command ends). */
async function readable(ctx: Context, resolved: ResolvedImage): Promise<ResolvedImage> {
  // only a lazy image loads the lazy reader (and with it the registry client)
  if (!hasLazyLayers(resolved.image)) return resolved;
  const { openLazyImage } = await import('../lazy/open-image.js');
  const options = await ctx.registryOptions(resolved.image.config.source.reference);
  // a span fetch's retry waits and stalls are said as warnings (there is no progress bar during a read)
  const onNotice = (n: NetworkNotice): void => warn(ctx, `${n.what}: ${n.message}`);
  // a layer filled from its whole blob is held to the config file's limits, as a pull is (not the defaults)
  const limits = await configLimits(undefined);
  const image = await openLazyImage(resolved.image, { ...options, limits, signal: ctx.signal, warn: (m) => warn(ctx, m), onNotice, cacheDir: ctx.cache.root });
  ctx.defer(() => image.close());
  return { ...resolved, image };
}

/**
 * The cached image for the asked platform (or, without one, the host's; else the name's most recent,
 * with a warning). Undefined when a reference must be pulled: not cached, or not for that platform.
 */
async function findCached(ctx: Context, arg: string): Promise<Image | undefined> {
  try {
    const image = await findImage(ctx.cache, arg, ctx.platform);
    if (ctx.platform === undefined && !createMatcher(hostPlatform()).match(configPlatform(image.config))) {
      const have = formatPlatform(configPlatform(image.config));
      warn(ctx, `using the cached ${have} image of ${arg}, not this host's ${formatPlatform(hostPlatform())} (pass --arch to choose)`);
    }
    return image;
  } catch (err) {
    // An image id is never pulled: an unknown one is simply not found.
    if (isImageId(arg)) throw err;
    const reference = isReference(arg);
    if (isVmimgError(err, ErrorCode.NOT_FOUND)) {
      if (reference) pullNotices.set(arg, `${arg} is not cached: pulling it from ${parseReference(arg).registry}`);
      return undefined; // not a reference either: pulling it reports the bad reference
    }
    if (!reference || !isVmimgError(err, ErrorCode.PLATFORM_MISMATCH)) throw err;
    pullNotices.set(arg, `${err.message}: pulling it from ${parseReference(arg).registry}`);
    return undefined;
  }
}

/**
 * A path-looking argument that names nothing on disk, as a cached image's name: `images` shows archive
 * images as `<path>:<ref name>` or `<path>@<digest>`, names that outlive the archive. Undefined when
 * the argument is no such name (then it is read as a path: a missing one is ERR_NOT_FOUND).
 */
export async function cachedByPathName(ctx: Context, arg: string): Promise<Image | undefined> {
  for (const name of (await cachedPathNames(arg)) ?? []) {
    try {
      return await findImage(ctx.cache, name, ctx.platform);
    } catch (err) {
      if (!isVmimgError(err, ErrorCode.NOT_FOUND)) throw err;
    }
  }
  return undefined;
}

/** Why a reference is about to be pulled by a command that reads images (said once the pull starts). */
const pullNotices = new Map<string, string>();

/** A warning line on stderr (a JSON progress event with --json; nothing with -q). */
export function warn(ctx: Context, message: string): void {
  if (ctx.quiet) return;
  process.stderr.write(ctx.json ? `${JSON.stringify({ progress: { type: 'warning', message } })}\n` : `warning: ${escapeTerminal(message)}\n`);
}

export async function pullImage(ctx: Context, ref: string, extra: Pick<PullOptions, 'concurrency' | 'limits' | 'checkpoints' | 'lazy'> = {}): Promise<Image> {
  parseReference(ref); // a bad reference is a usage error before anything starts
  const progress = ctx.progress();
  const notice = pullNotices.get(ref);
  if (notice !== undefined) progress.listener({ type: 'warning', message: notice });
  try {
    const options: PullOptions = {
      ...(await ctx.registryOptions(ref)),
      cacheDir: ctx.cache.root,
      onProgress: progress.listener,
      signal: ctx.signal,
      ...platformOption(ctx),
      ...extra,
      limits: await configLimits(extra.limits),
    };
    const { pull } = await import('../image/pull.js');
    return await pull(ref, options);
  } finally {
    progress.done();
  }
}

/** Loads an image tar, or (`type` 'layout') an OCI image layout directory, into the cache. */
export async function loadTar(
  ctx: Context,
  path: string,
  tag?: string,
  extra: Pick<LoadOptions, 'concurrency' | 'limits'> = {},
  type: 'file' | 'layout' = 'file',
): Promise<Image> {
  const progress = ctx.progress();
  try {
    const options: LoadOptions = {
      cacheDir: ctx.cache.root,
      onProgress: progress.listener,
      signal: ctx.signal,
      ...platformOption(ctx),
      ...(tag !== undefined ? { tag } : {}),
      ...extra,
      limits: await configLimits(extra.limits),
    };
    const { loadFromLayout, loadFromTar } = await import('../image/load.js');
    return await (type === 'layout' ? loadFromLayout(path, options) : loadFromTar(path, options));
  } finally {
    progress.done();
  }
}

/** Adds the names the cache has for an image. */
export async function named(ctx: Context, image: Image, kind: ImageKind): Promise<ResolvedImage> {
  const id = image.config.source.configDigest;
  const summary = (await listImages(ctx.cache)).find((s) => s.id === id && s.dir === image.dir);
  return { image, kind, names: summary?.names ?? [] };
}

/** The config file's "limits", overridden by the command's flags. */
async function configLimits(flags: Partial<LayerLimits> | undefined): Promise<Partial<LayerLimits>> {
  return { ...(await loadUserConfig()).limits, ...flags };
}

function platformOption(ctx: Context): { platform?: NonNullable<Context['platform']> } {
  return ctx.platform ? { platform: ctx.platform } : {};
}

function isImageId(s: string): boolean {
  return /^sha256:[0-9a-f]{6,64}$/.test(s) || /^[0-9a-f]{64}$/.test(s);
}

/** True when `s` parses as a registry reference. */
export function isReference(s: string): boolean {
  try {
    parseReference(s);
    return true;
  } catch {
    return false;
  }
}
