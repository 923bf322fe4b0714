/**
 * Image archives and OCI layout directories on disk as ImageSources, each through its BlobReader
 * (src/content/): `docker save` classic and Docker 25+ (DockerSaveReader), OCI archives and OCI image
 * layout directories (OciLayoutReader). `manifest.json` wins when a tar has both it and `index.json`:
 * it carries the repo tags Docker users expect.
 */
import { open } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits } from '../manifest/index.js';
import type { Platform } from '../platform/types.js';
import type { BlobReader } from '../content/blob-reader.js';
import { DockerSaveReader, type DockerManifestEntry } from '../content/docker-save.js';
import { OciLayoutReader, directoryFiles, tarFiles } from '../content/layout.js';
import type { ImageSource } from './source.js';
import { TarMembers } from '../content/tar-members.js';
import { openReaderSource } from './reader-source.js';

export type { DockerManifestEntry } from '../content/docker-save.js';

export interface ArchiveOptions {
  /** Wanted platform; the host's when absent. */
  platform?: Platform;
  /** Whether the user named the platform (a single-platform mismatch is then an error). */
  explicitPlatform?: boolean;
  /** Which image of a multi-image archive or layout: a tag or ref name, a manifest or config digest (select.ts). */
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

/** An image tar (`docker save` or OCI archive) as an ImageSource. */
export async function openArchive(path: string, options: ArchiveOptions = {}): Promise<ImageSource> {
  return openReaderSource(await openArchiveReader(path), options);
}

/** An OCI image layout directory (`oci-layout` + `index.json`) as an ImageSource. */
export async function openLayoutDir(path: string, options: ArchiveOptions = {}): Promise<ImageSource> {
  return openReaderSource(await OciLayoutReader.open(directoryFiles(path), 'oci-layout'), options);
}

/** The BlobReader of an image tar, or ERR_INVALID_ARCHIVE saying exactly why it is not one. */
export async function openArchiveReader(path: string): Promise<BlobReader> {
  await refuseCompressed(path);
  const tar = await TarMembers.open(path);
  if (tar.has('manifest.json')) return DockerSaveReader.open(tar, parseDockerManifest(await tar.read('manifest.json', documentLimits().maxManifestBytes), tar.path));
  if (tar.has('index.json')) return OciLayoutReader.open(tarFiles(tar), 'oci-archive');
  throw new VmimgError(
    ErrorCode.INVALID_ARCHIVE,
    `${path}: not an image archive (no manifest.json and no index.json; it holds ${preview(tar.names())})`,
  );
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
