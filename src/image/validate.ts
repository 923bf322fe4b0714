/** `validateTar(path)`: what an image archive holds, or exactly why it is not one. Reads no layer. */
import { resolve } from 'node:path';
import { sha256Digest } from '../digest/index.js';
import { ErrorCode, VmimgError, wrapError } from '../errors.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, MediaType, configPlatform, isAttestation, parseImageConfig, parseManifestDocument, type Descriptor } from '../manifest/index.js';
import { formatPlatform } from '../platform/index.js';
import { ArchiveBlobs, openArchiveMembers, parseDockerManifest } from './archive.js';
import type { TarMembers } from './tar-members.js';

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
  const entries = parseDockerManifest(await tar.read('manifest.json', MAX_MANIFEST_BYTES), tar.path);
  return Promise.all(
    entries.map(async (e) => {
      const bytes = await tar.read(e.Config, MAX_CONFIG_BYTES);
      const config = parseImageConfig(bytes);
      for (const layer of e.Layers) tar.require(layer);
      return {
        ...(e.RepoTags?.[0] ? { name: e.RepoTags.join(', ') } : {}),
        platform: formatPlatform(configPlatform(config)),
        configDigest: sha256Digest(bytes),
        layers: e.Layers.length,
      };
    }),
  );
}

async function ociImages(tar: TarMembers): Promise<TarImage[]> {
  const blobs = new ArchiveBlobs(tar);
  const images: TarImage[] = [];
  const visit = async (d: Descriptor, name: string | undefined, depth: number): Promise<void> => {
    if (depth > 4 || isAttestation(d)) return;
    const doc = parseManifestDocument(await blobs.read(d, MAX_MANIFEST_BYTES), d.mediaType);
    if (doc.kind === 'index') {
      for (const child of doc.index.manifests) await visit(child, name, depth + 1);
      return;
    }
    const config = parseImageConfig(await blobs.read(doc.manifest.config, MAX_CONFIG_BYTES));
    for (const layer of doc.manifest.layers) tar.require(blobs.member(layer));
    images.push({
      ...(name ? { name } : {}),
      platform: formatPlatform(configPlatform(config)),
      manifestDigest: d.digest,
      configDigest: doc.manifest.config.digest,
      layers: doc.manifest.layers.length,
    });
  };
  const top = parseManifestDocument(await tar.read('index.json', MAX_MANIFEST_BYTES), MediaType.OCI_INDEX);
  if (top.kind !== 'index') throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${tar.path}: index.json is not an image index`);
  for (const d of top.index.manifests) {
    await visit(d, d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'], 0);
  }
  return images;
}
