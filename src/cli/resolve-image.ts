/**
 * Turns an IMAGE argument into a prepared image. A path (image-arg.ts decides) is an image directory
 * (used in place) or an image tar (loaded into the cache); a missing path is ERR_NOT_FOUND. A name is
 * a cached image's name or id (when `cached` is allowed), else a registry reference (pulled).
 */
import {
  ErrorCode,
  findImage,
  isVmimgError,
  listImages,
  loadFromDir,
  loadFromTar,
  parseReference,
  pull,
  type Image,
  type LayerLimits,
  type LoadOptions,
  loadUserConfig,
  type PullOptions,
} from '../index.js';
import type { Context } from './context.js';
import { classifyImageArg } from './image-arg.js';

export interface ResolveOptions {
  /** Look the argument up among cached images before pulling (default true). */
  cached?: boolean;
}

export type ImageKind = 'dir' | 'tar' | 'cached' | 'registry';

export interface ResolvedImage {
  image: Image;
  kind: ImageKind;
  /** Names the cache knows the image by (empty for an image directory outside it). */
  names: string[];
}

export async function resolveImage(ctx: Context, arg: string, options: ResolveOptions = {}): Promise<ResolvedImage> {
  const a = await classifyImageArg(arg);
  if (a.kind === 'path') {
    if (a.type === 'dir') return { image: await loadFromDir(a.path, platformOption(ctx)), kind: 'dir', names: [] };
    return named(ctx, await loadTar(ctx, a.path), 'tar');
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
  return named(ctx, await findImage(ctx.cache, undefined, ctx.platform), 'cached');
}

async function findCached(ctx: Context, arg: string): Promise<Image | undefined> {
  try {
    return await findImage(ctx.cache, arg, ctx.platform);
  } catch (err) {
    // Not cached (or cached for another platform under that name): a valid reference gets pulled.
    // An image id is never pulled: an unknown one is simply not found.
    if (isImageId(arg)) throw err;
    const fallThrough = isVmimgError(err, ErrorCode.NOT_FOUND) || (isVmimgError(err, ErrorCode.PLATFORM_MISMATCH) && isReference(arg));
    if (fallThrough) return undefined;
    throw err;
  }
}

export async function pullImage(ctx: Context, ref: string, extra: Pick<PullOptions, 'concurrency' | 'limits'> = {}): Promise<Image> {
  parseReference(ref); // a bad reference is a usage error before anything starts
  const progress = ctx.progress();
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
    return await pull(ref, options);
  } finally {
    progress.done();
  }
}

export async function loadTar(ctx: Context, path: string, tag?: string, extra: Pick<LoadOptions, 'concurrency' | 'limits'> = {}): Promise<Image> {
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
    return await loadFromTar(path, options);
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

function isReference(s: string): boolean {
  try {
    parseReference(s);
    return true;
  } catch {
    return false;
  }
}
