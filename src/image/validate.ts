/**
 * `validateTar(path)`: what an image archive (or OCI layout directory) holds, or exactly why it is not
 * one — the one index walk with every manifest and config read, and every layer's presence checked.
 * Reads no layer's bytes.
 * `verifyImage(image)`: every file of a prepared image checked against its layer index's sha256.
 */
import { resolve } from 'node:path';
import { ErrorCode, VmimgError, wrapError } from '../errors.js';
import type { LazyContent } from '../lazy/lazy-content.js';
import { formatPlatform } from '../platform/index.js';
import type { BlobReader } from '../content/blob-reader.js';
import { SYNTHESIZED_ANNOTATION } from '../content/docker-save.js';
import { OciLayoutReader, directoryFiles } from '../content/layout.js';
import { listImageEntries } from '../content/walk.js';
import { openArchiveReader } from './archive.js';
import { verifyLayer } from '../layer/verify.js';
import type { Image } from './image-dir.js';

export interface TarImage {
  name?: string;
  platform: string;
  /** The image's manifest digest (absent for a classic `docker save`, which has no manifests). */
  manifestDigest?: string;
  configDigest: string;
  layers: number;
}

export interface TarReport {
  path: string;
  format: 'docker-archive' | 'oci-archive' | 'oci-layout';
  images: TarImage[];
}

/** Lists the images of an image tar; ERR_INVALID_ARCHIVE (or a blob's error) when it is not a whole one. */
export async function validateTar(path: string): Promise<TarReport> {
  const file = resolve(path);
  try {
    return await report(file, await openArchiveReader(file));
  } catch (err) {
    throw wrapError(err, `validating ${path}`);
  }
}

/** The same for an OCI image layout directory. */
export async function validateLayout(path: string): Promise<TarReport> {
  const dir = resolve(path);
  try {
    return await report(dir, await OciLayoutReader.open(directoryFiles(dir), 'oci-layout'));
  } catch (err) {
    throw wrapError(err, `validating ${path}`);
  }
}

async function report(path: string, reader: BlobReader): Promise<TarReport> {
  try {
    const images: TarImage[] = [];
    for (const e of await listImageEntries(reader, { readAll: true })) {
      const manifest = e.manifest!;
      for (const layer of manifest.layers) (await reader.open(layer, { length: 0 })).destroy(); // present?
      const names = e.names.join(', ');
      images.push({
        ...(names ? { name: names } : {}),
        platform: formatPlatform(e.platform!),
        ...(e.root.descriptor.annotations?.[SYNTHESIZED_ANNOTATION] === undefined ? { manifestDigest: e.descriptor.digest } : {}),
        configDigest: manifest.config.digest,
        layers: manifest.layers.length,
      });
    }
    return { path, format: reader.kind as TarReport['format'], images };
  } finally {
    await reader.close();
  }
}

export interface ImageCheck {
  /** Distinct layers checked. */
  layers: number;
  /** Regular files checked (every layer's, including those an upper layer hides). */
  files: number;
  /** Content bytes read and hashed. */
  bytes: number;
}

/**
 * Reads every regular file of every layer of `image` and checks it against the sha256 its `.idx`
 * recorded at flattening. Throws ERR_DIGEST_MISMATCH naming the first damaged file (exit 6).
 */
export async function verifyImage(image: Pick<Image, 'layers'>, options: { signal?: AbortSignal } = {}): Promise<ImageCheck> {
  const seen = new Set<string>();
  const total: ImageCheck = { layers: 0, files: 0, bytes: 0 };
  for (const layer of image.layers as (Image['layers'][number] & { content?: Partial<LazyContent> })[]) {
    if (seen.has(layer.indexPath)) continue; // a layer listed twice is stored once
    seen.add(layer.indexPath);
    // a lazy layer's .contents is sparse: its reader fetches and checks (never the damage marking below)
    if (layer.spansPath !== undefined && typeof layer.content?.verifyAll !== 'function') {
      throw new VmimgError(ErrorCode.INVALID_IMAGE, `${layer.indexPath}: a lazily pulled layer: verify the image opened with openLazyImage`);
    }
    const r = layer.spansPath !== undefined ? await layer.content!.verifyAll!(options.signal) : await verifyLayer(layer, options);
    total.layers++;
    total.files += r.files;
    total.bytes += r.bytes;
  }
  return total;
}
