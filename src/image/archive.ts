/**
 * Image archives on disk as ImageSources:
 * - `docker save`, classic (`manifest.json`, `<id>/layer.tar`, `<id>.json`, `repositories`);
 * - `docker save` from Docker 25+ (`manifest.json` whose paths point into an OCI layout `blobs/sha256/…`);
 * - OCI archives (`oci-layout` + `index.json` + `blobs/`), single- or multi-arch, one or several tags.
 * `manifest.json` wins when both are present: it carries the repo tags Docker users expect.
 */
import { open } from 'node:fs/promises';
import { digestHex, sha256Digest, validateDigest, assertDigest } from '../digest/index.js';
import { ErrorCode, VmimgError, isVmimgError } from '../errors.js';
import {
  MAX_MANIFEST_BYTES,
  MediaType,
  checkConfigPlatform,
  configPlatform,
  parseManifestDocument,
  type Descriptor,
  type ImageManifest,
} from '../manifest/index.js';
import { formatPlatform, hostPlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import type { ImageConfig } from '../manifest/index.js';
import type { Readable } from 'node:stream';
import type { ImageSource, OpenLayerOptions, SourceLayer } from './source.js';
import { TarMembers } from './tar-members.js';
import { addUnlistedManifests, listDockerImages, type DockerImage, type DockerManifestEntry } from './docker-save-images.js';
import { listOciImages } from './oci-images.js';
import { isDigestSelector, nameMatches, selectImage } from './select.js';

export type { DockerManifestEntry } from './docker-save-images.js';

export interface ArchiveOptions {
  /** Wanted platform; the host's when absent. */
  platform?: Platform;
  /** Whether the user named the platform (a single-platform mismatch is then an error). */
  explicitPlatform?: boolean;
  /** Which image of a multi-image archive: a tag or ref name, a manifest or config digest (select.ts). */
  tag?: string;
}


/** True when `ref` names an existing file that starts like a tar (or gzip) archive. */
export async function isLocalTar(ref: string): Promise<boolean> {
  try {
    const handle = await open(ref, 'r');
    try {
      const head = Buffer.alloc(512);
      const { bytesRead } = await handle.read(head, 0, 512, 0);
      return bytesRead === 512 && head.subarray(257, 262).toString('latin1') === 'ustar';
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}

export async function openArchive(path: string, options: ArchiveOptions = {}): Promise<ImageSource> {
  const { tar, format } = await openArchiveMembers(path);
  return format === 'docker-archive' ? dockerSaveSource(tar, options) : ociArchiveSource(tar, options);
}

/** Opens an archive's members and tells its format, or says exactly why it is not an image archive. */
export async function openArchiveMembers(path: string): Promise<{ tar: TarMembers; format: 'docker-archive' | 'oci-archive' }> {
  await refuseCompressed(path);
  const tar = await TarMembers.open(path);
  if (tar.has('manifest.json')) return { tar, format: 'docker-archive' };
  if (tar.has('index.json')) return { tar, format: 'oci-archive' };
  throw new VmimgError(
    ErrorCode.INVALID_ARCHIVE,
    `${path}: not an image archive (no manifest.json and no index.json; it holds ${preview(tar.names())})`,
  );
}

async function dockerSaveSource(tar: TarMembers, options: ArchiveOptions): Promise<ImageSource> {
  const entries = parseDockerManifest(await tar.read('manifest.json', MAX_MANIFEST_BYTES), tar.path);
  const wanted = options.platform ?? hostPlatform();
  const images = await listDockerImages(tar, entries);
  const select = () => selectImage(images, options.tag, wanted, tar.path);
  let chosen: DockerImage;
  try {
    chosen = select();
  } catch (err) {
    // A digest that names nothing listed may be a manifest Docker 25+ left out of index.json.
    const unlisted = isVmimgError(err, ErrorCode.NOT_FOUND) && options.tag !== undefined && isDigestSelector(options.tag);
    if (!unlisted || !(await addUnlistedManifests(tar, images))) throw err;
    chosen = select();
  }
  const { manifestEntry: entry, config, configDigest } = chosen;
  const warnings = platformWarning(config, wanted, options.explicitPlatform ?? false);
  if (entry.Layers.length !== config.rootfs.diff_ids.length) {
    throw new VmimgError(
      ErrorCode.INVALID_ARCHIVE,
      `${tar.path}: manifest.json lists ${entry.Layers.length} layers but the config has ${config.rootfs.diff_ids.length} diff_ids`,
    );
  }
  const layers: SourceLayer[] = entry.Layers.map((member, i) => {
    const digest = blobDigestFromPath(member);
    const size = tar.require(member).size;
    return {
      diffId: config.rootfs.diff_ids[i]!,
      ...(digest ? { digest } : {}),
      size,
      open: async () => tar.stream(member),
    };
  });
  return {
    info: {
      kind: 'docker-archive',
      reference: chosenName(chosen.names, options.tag) ?? tar.path,
      ...(chosen.digests[0] ? { manifestDigest: chosen.digests[0] } : {}),
      configDigest,
      platform: formatPlatform(configPlatform(config)),
    },
    config,
    layers,
    warnings,
  };
}

async function ociArchiveSource(tar: TarMembers, options: ArchiveOptions): Promise<ImageSource> {
  const blobs = new ArchiveBlobs(tar);
  const top = parseManifestDocument(await tar.read('index.json', MAX_MANIFEST_BYTES), MediaType.OCI_INDEX);
  if (top.kind !== 'index') throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${tar.path}: index.json is not an image index`);
  const wanted = options.platform ?? hostPlatform();
  const images = await listOciImages(top.index, (d, max) => blobs.read(d, max), tar.path);
  const chosen = selectImage(images, options.tag, wanted, tar.path);
  const { manifest, config } = chosen;
  return {
    info: {
      kind: 'oci-archive',
      reference: archiveReference(tar.path, chosenName(chosen.names, options.tag) ?? chosen.refName),
      manifestDigest: chosen.descriptor.digest,
      ...(chosen.indexDigest ? { indexDigest: chosen.indexDigest } : {}),
      configDigest: manifest.config.digest,
      platform: formatPlatform(configPlatform(config)),
    },
    config,
    layers: manifestLayers(manifest, config.rootfs.diff_ids, (d) => blobs.stream(d), tar.path),
    warnings: platformWarning(config, wanted, options.explicitPlatform ?? false),
  };
}

/** The name the selector matched, else undefined (then the source's first name is used). */
function chosenName(names: readonly string[], selector: string | undefined): string | undefined {
  return (selector === undefined ? undefined : names.find((n) => nameMatches(n, selector))) ?? names[0];
}

/**
 * Checks a single-platform image against the wanted platform: a mismatch is ERR_PLATFORM_MISMATCH when
 * the user named the platform, else a warning (the host's platform was only a default).
 */
export function platformWarning(config: ImageConfig, wanted: Platform, explicit: boolean): string[] {
  if (checkConfigPlatform(config, wanted, explicit)) return [];
  const have = formatPlatform(configPlatform(config));
  return [`the image is for ${have} only, not ${formatPlatform(wanted)} (pass --platform ${have} to make this explicit)`];
}

/** Pairs a manifest's layer descriptors with the config's diff_ids. */
export function manifestLayers(
  manifest: ImageManifest,
  diffIds: readonly string[],
  openBlob: (desc: Descriptor, options?: OpenLayerOptions) => Promise<Readable>,
  where: string,
): SourceLayer[] {
  if (manifest.layers.length !== diffIds.length) {
    throw new VmimgError(
      ErrorCode.INVALID_MANIFEST,
      `${where}: manifest has ${manifest.layers.length} layers but the config has ${diffIds.length} diff_ids`,
    );
  }
  return manifest.layers.map((desc, i) => ({
    diffId: diffIds[i]!,
    digest: desc.digest,
    size: desc.size,
    mediaType: desc.mediaType,
    open: (options?: OpenLayerOptions) => openBlob(desc, options),
  }));
}

/** An OCI layout's blobs inside an archive: `blobs/<alg>/<hex>`, read back verified. */
export class ArchiveBlobs {
  constructor(private readonly tar: TarMembers) {}

  member(desc: Descriptor): string {
    validateDigest(desc.digest);
    return `blobs/${desc.digest.replace(':', '/')}`;
  }

  async read(desc: Descriptor, max: number): Promise<Buffer> {
    const bytes = await this.tar.read(this.member(desc), max);
    assertDigest(`${this.tar.path}: blob ${desc.digest}`, desc.digest, sha256Digest(bytes));
    return bytes;
  }

  async stream(desc: Descriptor): Promise<Readable> {
    return this.tar.stream(this.member(desc));
  }
}

/**
 * The name an archive's image is recorded under: a full reference when the archive names one
 * (`io.containerd.image.name`, or a ref name like `docker.io/x/y:1`), else `<archive path>:<ref name>`
 * — a bare OCI ref name such as `latest` is only a tag and must not read as an image called "latest".
 */
function archiveReference(path: string, name: string | undefined): string {
  if (name === undefined) return path;
  return name.includes('/') || name.includes(':') ? name : `${path}:${name}`;
}

export function parseDockerManifest(bytes: Buffer, path: string): DockerManifestEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${path}: manifest.json is not JSON`, { cause: err });
  }
  const ok =
    Array.isArray(doc) &&
    doc.length > 0 &&
    doc.every(
      (e) =>
        typeof e?.Config === 'string' &&
        Array.isArray(e.Layers) &&
        e.Layers.every((l: unknown) => typeof l === 'string') &&
        (e.RepoTags === undefined || e.RepoTags === null || Array.isArray(e.RepoTags)),
    );
  if (!ok) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${path}: manifest.json is not a docker save manifest`);
  return doc as DockerManifestEntry[];
}

function blobDigestFromPath(member: string): string | undefined {
  const m = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(member);
  if (!m) return undefined;
  const digest = `${m[1]}:${m[2]}`;
  try {
    digestHex(digest);
    return digest;
  } catch {
    return undefined;
  }
}

function preview(names: string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(', ')}, ...` : names.join(', ') || 'nothing';
}

async function refuseCompressed(path: string): Promise<void> {
  let head: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      head = Buffer.alloc(4);
      await handle.read(head, 0, 4, 0);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new VmimgError(ErrorCode.NOT_FOUND, `${path}: cannot open archive (${(err as Error).message})`, { cause: err });
  }
  if (head[0] === 0x1f && head[1] === 0x8b) {
    throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${path}: is gzip-compressed`, {
      hint: `decompress it first (gunzip -k ${path}); vmimg reads archives in place to stream layers in parallel`,
    });
  }
}
