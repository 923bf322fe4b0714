/**
 * IMAGE as a PushSource, for `push` and `export --format oci`: an image tar, an OCI layout directory, a
 * cached image (read from the store), else a registry reference — each through the content seam's
 * BlobReader and the one index walk.
 */
import { stat } from 'node:fs/promises';
import { OciLayoutReader, RegistryBlobReader, StoreBlobReader, directoryFiles, type BlobReader } from '../content/index.js';
import { ErrorCode, isVmimgError, VmimgError } from '../errors.js';
import { openArchiveReader } from '../image/archive.js';
import { openSourceReader } from '../image/open-reader.js';
import { findImage } from '../image/catalog.js';
import type { Image } from '../image/index.js';
import type { ImageSourceInfo } from '../image/runtime-config.js';
import { pushSourceFromReader } from '../push/open-source.js';
import { readerSource } from '../push/reader-source.js';
import type { PushSource } from '../push/types.js';
import { formatReference, parseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { BlobStore } from '../store/index.js';
import type { Context } from './context.js';
import { cachedPathNames, classifyImageArg } from './image-arg.js';
import { isReference } from './resolve-image.js';

export interface SourceChoice {
  /** Which image of a multi-image source (`--tag`). */
  readonly tag?: string | undefined;
  /** The whole index (`--all`). */
  readonly all?: boolean;
}

/** SRC as a PushSource: an image tar, an OCI layout directory, a cached image, else a registry reference. */
export async function openPushSource(ctx: Context, client: RegistryClient, arg: string | undefined, args: SourceChoice): Promise<PushSource> {
  if (arg === undefined) return (await cachedSource(ctx, undefined, args.all === true))!;
  // names `images` shows for archive images (`<path>@<digest>`) before paths: they outlive the archive
  for (const name of (await cachedPathNames(arg)) ?? []) {
    const hit = await cachedSource(ctx, name, args.all === true).catch((err: unknown) => (isVmimgError(err, ErrorCode.NOT_FOUND) ? undefined : Promise.reject(err)));
    if (hit !== undefined) return hit;
  }
  const a = await classifyImageArg(arg);
  const choice = {
    platform: ctx.platform,
    explicitPlatform: ctx.platform !== undefined,
    tag: a.kind === 'path' && a.tag !== undefined ? a.tag : args.tag,
    all: args.all === true,
    signal: ctx.signal,
  };
  if (a.kind === 'path') {
    if (a.type === 'dir') {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${a.path} is a flattened image directory: it holds no blobs to push`, {
        hint: 'push the image it came from: its name in the cache, its tar, or its registry reference',
      });
    }
    const reader = a.type === 'file' ? await openArchiveReader(a.path) : await OciLayoutReader.open(directoryFiles(a.path), 'oci-layout');
    return closingOnError(reader, () => pushSourceFromReader(reader, choice));
  }
  const cached = a.forced ? undefined : await cachedSource(ctx, a.name, choice.all);
  if (cached !== undefined) return cached;
  const ref = parseReference(a.name);
  const reader = new RegistryBlobReader(client, ref);
  return closingOnError(reader, () => pushSourceFromReader(reader, { ...choice, origin: { registry: ref.registry, repository: ref.repository } }));
}

/**
 * A cached image by name or id, read from the store (which keeps its manifest, index and config) and the
 * tar or layout it was loaded from, if so: the manifest, or with `all` the index it came from (a classic
 * `docker save` image: as its tar). Undefined when the name is not cached for the platform.
 */
async function cachedSource(ctx: Context, name: string | undefined, all: boolean): Promise<PushSource | undefined> {
  let image: Image;
  try {
    image = await findImage(ctx.cache, name, ctx.platform);
  } catch (err) {
    const notCached = isVmimgError(err, ErrorCode.NOT_FOUND) || isVmimgError(err, ErrorCode.PLATFORM_MISMATCH);
    if (notCached && name !== undefined && isReference(name)) return undefined;
    throw err;
  }
  const src = image.config.source;
  const digest = all ? (src.indexDigest ?? src.manifestDigest) : src.manifestDigest;
  if (digest === undefined) return classicSaveSource(ctx, name ?? src.configDigest, src, all);
  // The root by digest from the store; blobs through openSourceReader, which falls back to the tar or
  // layout a loaded image came from (its layer blobs are not copied into the store).
  const [root] = await (await StoreBlobReader.forDigests(new BlobStore(ctx.cache.root), [{ digest, names: name !== undefined ? [name] : [] }])).roots();
  const reader = await openSourceReader({ kind: 'cached', image, cache: ctx.cache });
  const origin = src.kind === 'registry' && src.reference !== undefined ? originOf(src.reference) : undefined;
  const names = [canonicalName(name ?? src.reference)].filter((n): n is string => n !== undefined);
  // the store alone (a pulled image): every blob was verified on entry; a fallback to a tar or layout was not
  const verified = reader instanceof StoreBlobReader;
  return closingOnError(reader, () => readerSource(reader, root!.descriptor, { names, verified, ...(origin ? { origin } : {}), signal: ctx.signal }));
}

/**
 * A cached image loaded from a classic `docker save` tar (no manifest of its own): pushed as the tar
 * itself is, the image picked by its config digest and a manifest built over its layers (a note says
 * so). ERR_NOT_FOUND naming the tar when it is gone.
 */
async function classicSaveSource(ctx: Context, name: string, src: ImageSourceInfo, all: boolean): Promise<PushSource> {
  const path = src.path;
  if (path === undefined || !(await isFile(path))) {
    throw new VmimgError(ErrorCode.NOT_FOUND, `cached image ${name} was loaded from ${path ?? 'a classic docker save tar'}, which holds no manifest, and the tar is no longer there`, {
      hint: 'load the tar again (a push builds a manifest over its layers), or pull the image from a registry',
    });
  }
  const reader = await openArchiveReader(path);
  return closingOnError(reader, () => pushSourceFromReader(reader, { platform: ctx.platform, explicitPlatform: ctx.platform !== undefined, tag: src.configDigest, all, signal: ctx.signal }));
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

/** A cached name as a full reference when it is one (`alpine` → `docker.io/library/alpine:latest`), else as is (a tar's path). */
function canonicalName(name: string | undefined): string | undefined {
  return name !== undefined && isReference(name) ? formatReference(parseReference(name)) : name;
}

function originOf(reference: string): { registry: string; repository: string } | undefined {
  try {
    const ref = parseReference(reference);
    return { registry: ref.registry, repository: ref.repository };
  } catch {
    return undefined;
  }
}

async function closingOnError<T>(reader: BlobReader, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    await reader.close();
    throw err;
  }
}

