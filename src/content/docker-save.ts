/**
 * A `docker save` tar as a BlobReader: one root per manifest.json entry (its RepoTags are the names).
 *
 * - Docker 25+ (an OCI layout inside: `oci-layout`, `index.json`, `blobs/sha256/…`): the root is the
 *   image's real manifest — the one index.json reaches whose config is the entry's, else (moby#51389:
 *   images saved by digest may be left out of index.json) an unlisted manifest blob naming that config.
 *   Digests are the image's own, so a push keeps them.
 * - Classic (`<id>/layer.tar`, `<id>.json`; no manifests at all): the manifest is synthesised, a Docker
 *   v2 schema 2 manifest (`application/vnd.docker.distribution.manifest.v2+json`) whose config
 *   descriptor is the config file's (sha256 of its bytes, `application/vnd.docker.container.image.v1+json`)
 *   and whose layers are the layer tars as they are: an uncompressed tar's digest is its diff_id
 *   (`application/vnd.docker.image.rootfs.diff.tar`); a compressed one (gzip, zstd — rare) is hashed
 *   once when the reader opens. Its root descriptor carries SYNTHESIZED_ANNOTATION: the digest is
 *   vmimg's, not the image publisher's (a push says so; image dirs do not record it).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { assertDigest, sha256Digest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits, MediaType, parseImageConfig, parseManifestDocument, type Descriptor } from '../manifest/index.js';
import type { TarMembers } from './tar-members.js';
import { OciLayoutReader, blobPath, sizeMismatch, tarFiles } from './layout.js';
import { listImageEntries } from './walk.js';
import type { BlobReader, NamedDescriptor, OpenBlobOptions } from './blob-reader.js';

/** On a root descriptor: its manifest was built by vmimg from a classic `docker save` (value: `docker-save`). */
export const SYNTHESIZED_ANNOTATION = 'dev.vmimg.synthesized';

/** One manifest.json entry. */
export interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export class DockerSaveReader implements BlobReader {
  readonly kind = 'docker-archive' as const;
  /** digest → tar member, for blobs that are not at `blobs/<alg>/<hex>`. */
  private readonly members = new Map<string, string>();
  /** Synthesised manifests, by digest. */
  private readonly built = new Map<string, Buffer>();
  private rootList: NamedDescriptor[] = [];

  private constructor(private readonly tar: TarMembers) {}

  get where(): string {
    return this.tar.path;
  }

  /** Reads manifest.json and each entry's config; finds or builds each entry's manifest (see above). */
  static async open(tar: TarMembers, entries: readonly DockerManifestEntry[]): Promise<DockerSaveReader> {
    const reader = new DockerSaveReader(tar);
    const layout = tar.has('index.json') && tar.has('oci-layout') ? await ociManifests(tar) : new Map<string, Descriptor>();
    for (const entry of entries) {
      const config = await tar.read(entry.Config, documentLimits().maxConfigBytes);
      const configDigest = sha256Digest(config);
      parseImageConfig(config);
      reader.members.set(configDigest, entry.Config);
      const names = [...(entry.RepoTags ?? [])];
      const real = layout.get(configDigest) ?? (tar.has('oci-layout') ? await unlistedManifest(tar, configDigest) : undefined);
      if (real !== undefined) {
        reader.rootList.push({ descriptor: real, names });
        continue;
      }
      const descriptor = await reader.synthesize(entry, { mediaType: MediaType.DOCKER_CONFIG, digest: configDigest, size: config.length });
      reader.rootList.push({ descriptor, names });
    }
    return reader;
  }

  /** Builds the classic entry's manifest (module comment) and records where its blobs are. */
  private async synthesize(entry: DockerManifestEntry, config: Descriptor): Promise<Descriptor> {
    const diffIds = parseImageConfig(await this.tar.read(entry.Config, documentLimits().maxConfigBytes)).rootfs.diff_ids;
    const layers: Descriptor[] = [];
    for (const [i, member] of entry.Layers.entries()) {
      const size = this.tar.require(member).size;
      const kind = await sniff(this.tar, member);
      const digest = kind === 'plain' && diffIds[i] !== undefined ? diffIds[i]! : await hashMember(this.tar, member);
      const mediaType = kind === 'plain' ? MediaType.DOCKER_LAYER : kind === 'gzip' ? MediaType.DOCKER_LAYER_GZIP : MediaType.OCI_LAYER_ZSTD;
      this.members.set(digest, member);
      layers.push({ mediaType, digest, size });
    }
    const manifest = { schemaVersion: 2, mediaType: MediaType.DOCKER_MANIFEST, config, layers };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = sha256Digest(bytes);
    this.built.set(digest, bytes);
    return { mediaType: MediaType.DOCKER_MANIFEST, digest, size: bytes.length, annotations: { [SYNTHESIZED_ANNOTATION]: 'docker-save' } };
  }

  async roots(): Promise<NamedDescriptor[]> {
    return [...this.rootList];
  }

  async open(desc: Descriptor, options: OpenBlobOptions = {}): Promise<Readable> {
    const member = this.memberOf(desc);
    const size = this.tar.require(member).size;
    if (size !== desc.size) throw sizeMismatch(`${this.where}: blob ${desc.digest}`, size, desc.size);
    const offset = options.offset ?? 0;
    if (offset > size) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${this.where}: blob ${desc.digest}: offset ${offset} is past its end (${size} bytes)`);
    return this.tar.stream(member, offset, options.length);
  }

  async readBytes(desc: Descriptor, maxBytes: number): Promise<Buffer> {
    const what = `${this.where}: blob ${desc.digest}`;
    if (desc.size > maxBytes) throw new VmimgError(ErrorCode.TOO_LARGE, `${what} is ${desc.size} bytes, over the ${maxBytes}-byte limit`);
    const bytes = this.built.get(desc.digest) ?? (await this.tar.read(this.memberOf(desc), maxBytes));
    if (bytes.length !== desc.size) throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what} is ${bytes.length} bytes, its descriptor says ${desc.size}`);
    assertDigest(what, desc.digest, sha256Digest(bytes));
    return bytes;
  }

  async close(): Promise<void> {}

  private memberOf(desc: Descriptor): string {
    const member = this.members.get(desc.digest) ?? blobPath(desc.digest);
    if (!this.tar.has(member)) throw new VmimgError(ErrorCode.NOT_FOUND, `${this.where}: blob ${desc.digest} is not in the archive`);
    return member;
  }
}

/** Docker 25+: the manifests index.json reaches, by config digest. A broken OCI half only loses digests. */
async function ociManifests(tar: TarMembers): Promise<Map<string, Descriptor>> {
  const found = new Map<string, Descriptor>();
  try {
    const layout = await OciLayoutReader.open(tarFiles(tar), 'docker-archive');
    for (const e of await listImageEntries(layout, { readAll: true })) {
      if (e.configDigest !== undefined && e.manifest !== undefined && !found.has(e.configDigest)) {
        found.set(e.configDigest, { ...e.descriptor, mediaType: e.manifest.mediaType });
      }
    }
  } catch {
    // manifest.json is what docker load reads
  }
  return found;
}

/** moby#51389: a manifest blob index.json does not list, naming `configDigest`. Reads only small blobs. */
async function unlistedManifest(tar: TarMembers, configDigest: string): Promise<Descriptor | undefined> {
  for (const name of tar.names()) {
    const hex = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name)?.[1];
    if (hex === undefined || tar.require(name).size > documentLimits().maxManifestBytes || `sha256:${hex}` === configDigest) continue;
    const bytes = await tar.read(name, documentLimits().maxManifestBytes);
    if (!bytes.includes(configDigest) || sha256Digest(bytes) !== `sha256:${hex}`) continue;
    try {
      const doc = parseManifestDocument(bytes);
      if (doc.kind === 'manifest' && doc.manifest.config.digest === configDigest) return { mediaType: doc.manifest.mediaType, digest: `sha256:${hex}`, size: bytes.length };
    } catch {
      // not a manifest
    }
  }
  return undefined;
}

async function sniff(tar: TarMembers, member: string): Promise<'plain' | 'gzip' | 'zstd'> {
  const head: Buffer[] = [];
  for await (const chunk of tar.stream(member, 0, 4)) head.push(chunk as Buffer);
  const b = Buffer.concat(head);
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'plain';
}

async function hashMember(tar: TarMembers, member: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of tar.stream(member)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
