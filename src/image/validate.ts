/**
 * `validateTar(path)`: what an image archive holds, or exactly why it is not one. Reads no layer.
 * `verifyImage(image)`: every file of a prepared image checked against its layer index's sha256.
 */
import { resolve } from 'node:path';
import { ErrorCode, VmimgError, wrapError } from '../errors.js';
import { MAX_MANIFEST_BYTES, MediaType, configPlatform, parseManifestDocument } from '../manifest/index.js';
import { formatPlatform } from '../platform/index.js';
import { ArchiveBlobs, openArchiveMembers, parseDockerManifest } from './archive.js';
import { addUnlistedManifests, listDockerImages } from './docker-save-images.js';
import { listOciImages } from './oci-images.js';
import type { TarMembers } from './tar-members.js';
import { verifyLayer } from '../layer/verify.js';
import type { Image } from './image-dir.js';

export interface TarImage {
  name?: string;
  platform: string;
  manifestDigest?: string;
  configDigest: string;
  layers: number;
}

export interface TarReport {
  path: string;
  format: 'docker-archive' | 'oci-archive';
  images: TarImage[];
}

export async function validateTar(path: string): Promise<TarReport> {
  const file = resolve(path);
  try {
    const { tar, format } = await openArchiveMembers(file);
    return { path: file, format, images: format === 'docker-archive' ? await dockerImages(tar) : await ociImages(tar) };
  } catch (err) {
    throw wrapError(err, `validating ${path}`);
  }
}

async function dockerImages(tar: TarMembers): Promise<TarImage[]> {
  const images = await listDockerImages(tar, parseDockerManifest(await tar.read('manifest.json', MAX_MANIFEST_BYTES), tar.path));
  await addUnlistedManifests(tar, images); // Docker 25+ may leave images out of index.json
  return images.map((i) => {
    for (const layer of i.manifestEntry.Layers) tar.require(layer);
    return {
      ...(i.names.length > 0 ? { name: i.names.join(', ') } : {}),
      platform: formatPlatform(configPlatform(i.config)),
      ...(i.digests[0] ? { manifestDigest: i.digests[0] } : {}),
      configDigest: i.configDigest,
      layers: i.manifestEntry.Layers.length,
    };
  });
}

async function ociImages(tar: TarMembers): Promise<TarImage[]> {
  const blobs = new ArchiveBlobs(tar);
  const top = parseManifestDocument(await tar.read('index.json', MAX_MANIFEST_BYTES), MediaType.OCI_INDEX);
  if (top.kind !== 'index') throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${tar.path}: index.json is not an image index`);
  const images = await listOciImages(top.index, (d, max) => blobs.read(d, max), tar.path);
  return images.map((i) => {
    for (const layer of i.manifest.layers) tar.require(blobs.member(layer));
    return {
      ...(i.refName ? { name: i.refName } : {}),
      platform: formatPlatform(configPlatform(i.config)),
      manifestDigest: i.descriptor.digest,
      configDigest: i.manifest.config.digest,
      layers: i.manifest.layers.length,
    };
  });
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
  for (const layer of image.layers) {
    if (seen.has(layer.indexPath)) continue; // a layer listed twice is stored once
    seen.add(layer.indexPath);
    const r = await verifyLayer(layer, options);
    total.layers++;
    total.files += r.files;
    total.bytes += r.bytes;
  }
  return total;
}
