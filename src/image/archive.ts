/**
 * Image archives on disk as ImageSources:
 * - `docker save`, classic (`manifest.json`, `<id>/layer.tar`, `<id>.json`, `repositories`);
 * - `docker save` from Docker 25+ (`manifest.json` whose paths point into an OCI layout `blobs/sha256/…`);
 * - OCI archives (`oci-layout` + `index.json` + `blobs/`), single- or multi-arch, one or several tags.
 * `manifest.json` wins when both are present: it carries the repo tags Docker users expect.
 */
import { open } from 'node:fs/promises';
import { digestHex, sha256Digest, validateDigest, assertDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import {
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  MediaType,
  checkConfigPlatform,
  choosePlatformManifest,
  configPlatform,
  parseImageConfig,
  parseManifestDocument,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from '../manifest/index.js';
import { formatPlatform, hostPlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import type { ImageConfig } from '../manifest/index.js';
import type { Readable } from 'node:stream';
import type { ImageSource, OpenLayerOptions, SourceLayer } from './source.js';
import { TarMembers } from './tar-members.js';

export interface ArchiveOptions {
  /** Wanted platform; the host's when absent. */
  platform?: Platform;
  /** Whether the user named the platform (a single-platform mismatch is then an error). */
  explicitPlatform?: boolean;
  /** Which image of a multi-image archive (`name:tag`, or just the tag for OCI archives). */
  tag?: string;
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';

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

/** The one manifest.json entry to load: by --tag, then by platform when several remain. */
async function pickDockerEntry(
  tar: TarMembers,
  entries: DockerManifestEntry[],
  options: ArchiveOptions,
  wanted: Platform,
): Promise<{ entry: DockerManifestEntry; bytes: Buffer; config: ImageConfig }> {
  let candidates = entries;
  if (options.tag) {
    candidates = entries.filter((e) => (e.RepoTags ?? []).some((t) => tagMatches(t, options.tag!)));
    if (candidates.length === 0) {
      throw new VmimgError(ErrorCode.NOT_FOUND, `${tar.path}: no image tagged "${options.tag}"; it holds ${listTags(entries)}`);
    }
  }
  const loaded = await Promise.all(
    candidates.map(async (entry) => {
      const bytes = await tar.read(entry.Config, MAX_CONFIG_BYTES);
      return { entry, bytes, config: parseImageConfig(bytes) };
    }),
  );
  let chosen = loaded;
  if (loaded.length > 1) {
    chosen = loaded.filter((l) => checkConfigPlatform(l.config, wanted, false));
    if (chosen.length !== 1) {
      throw new VmimgError(
        chosen.length === 0 ? ErrorCode.PLATFORM_MISMATCH : ErrorCode.INVALID_ARGUMENT,
        `${tar.path}: holds several images (${listTags(candidates)}); ` +
          (chosen.length === 0 ? `none for ${formatPlatform(wanted)}` : 'name one with --tag'),
      );
    }
  }
  return chosen[0]!;
}

async function dockerSaveSource(tar: TarMembers, options: ArchiveOptions): Promise<ImageSource> {
  const entries = parseDockerManifest(await tar.read('manifest.json', MAX_MANIFEST_BYTES), tar.path);
  const wanted = options.platform ?? hostPlatform();
  const { entry, bytes, config } = await pickDockerEntry(tar, entries, options, wanted);
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
      reference: entry.RepoTags?.[0] ?? tar.path,
      configDigest: sha256Digest(bytes),
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
  const tagged = pickByTag(top.index, options.tag, tar.path);
  const wanted = options.platform ?? hostPlatform();
  let indexDigest: string | undefined;
  let desc: Descriptor = tagged.length === 1 ? tagged[0]! : choosePlatformManifest({ ...top.index, manifests: tagged }, wanted);
  let manifest: ImageManifest | undefined;
  for (let depth = 0; !manifest; depth++) {
    if (depth > 4) throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${tar.path}: image indexes nested too deeply`);
    const doc = parseManifestDocument(await blobs.read(desc, MAX_MANIFEST_BYTES), desc.mediaType);
    if (doc.kind === 'manifest') manifest = doc.manifest;
    else {
      indexDigest ??= desc.digest;
      desc = choosePlatformManifest(doc.index, wanted);
    }
  }
  const config = parseImageConfig(await blobs.read(manifest.config, MAX_CONFIG_BYTES));
  const warnings = platformWarning(config, wanted, options.explicitPlatform ?? false);
  return {
    info: {
      kind: 'oci-archive',
      reference: archiveReference(tar.path, refName(tagged.length === 1 ? tagged[0]! : desc)),
      manifestDigest: desc.digest,
      ...(indexDigest ? { indexDigest } : {}),
      configDigest: manifest.config.digest,
      platform: formatPlatform(configPlatform(config)),
    },
    config,
    layers: manifestLayers(manifest, config.rootfs.diff_ids, (d) => blobs.stream(d), tar.path),
    warnings,
  };
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

function pickByTag(index: ImageIndex, tag: string | undefined, path: string): Descriptor[] {
  const all = index.manifests;
  if (!tag) {
    const names = new Set(all.map(refName).filter((n) => n !== undefined));
    if (names.size > 1) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${path}: holds several images (${[...names].join(', ')}); name one with --tag`);
    }
    return [...all];
  }
  const hits = all.filter((d) => {
    const name = refName(d);
    return name !== undefined && tagMatches(name, tag);
  });
  if (hits.length === 0) {
    const names = all.map(refName).filter((n) => n !== undefined);
    throw new VmimgError(ErrorCode.NOT_FOUND, `${path}: no image tagged "${tag}"; it holds ${names.length ? names.join(', ') : 'no tagged images'}`);
  }
  return hits;
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

function refName(desc: Descriptor): string | undefined {
  return desc.annotations?.[CONTAINERD_NAME] ?? desc.annotations?.[REF_NAME];
}

/** `busybox:1.36` matches `busybox:1.36`, `docker.io/library/busybox:1.36` and a bare `1.36` ref name. */
function tagMatches(candidate: string, wanted: string): boolean {
  if (candidate === wanted) return true;
  const strip = (s: string) => s.replace(/^docker\.io\/(library\/)?/, '');
  return strip(candidate) === strip(wanted) || candidate.endsWith(`:${wanted}`);
}

export interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[];
  Layers: string[];
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

function listTags(entries: DockerManifestEntry[]): string {
  const tags = entries.flatMap((e) => e.RepoTags ?? []);
  return tags.length ? tags.join(', ') : `${entries.length} untagged image(s)`;
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
