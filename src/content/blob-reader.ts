/**
 * The read side of the content seam: every image source (a registry repository, a `docker save` tar,
 * an OCI archive, an OCI image layout directory, the local store) is a BlobReader — content addressed
 * by descriptor, as containerd's `content.Provider` + `remotes.Resolver` and go-containerregistry's
 * `remote.Descriptor` are. Everything above (the index walk in ./walk.ts, the prepare pipeline, push,
 * serve) works on descriptors only and never on a source's internals, so a new source is a new
 * BlobReader and nothing else (./README.md shows how; ./layout.ts is the example).
 *
 * Sizes are bytes. Digests are `sha256:<hex>` (`sha512:` where a source has them). Errors are
 * VmimgErrors: ERR_NOT_FOUND (no such blob or name), ERR_TOO_LARGE (over a cap), ERR_DIGEST_MISMATCH
 * (content does not match its descriptor), ERR_INVALID_ARCHIVE / ERR_INVALID_MANIFEST (a broken source),
 * plus the network codes for a registry.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../manifest/types.js';
import type { NoticeListener } from '../util/retry.js';

/** What kind of source a reader reads (recorded in an image dir's `config.json` as `source.kind`). */
export type SourceKind = 'registry' | 'docker-archive' | 'oci-archive' | 'oci-layout' | 'store';

export interface ReadOptions {
  readonly signal?: AbortSignal | undefined;
  /** Retry waits and stalls while a remote source answers (registry only). */
  readonly onNotice?: NoticeListener | undefined;
}

export interface OpenBlobOptions extends ReadOptions {
  /** First byte to read (default 0). */
  readonly offset?: number;
  /** How many bytes from `offset` (default: to the end of the blob). */
  readonly length?: number;
}

/** A top-level image a source offers: a manifest or index descriptor and the names it goes by. */
export interface NamedDescriptor {
  /** Descriptor of an image manifest or image index (never a layer). */
  readonly descriptor: Descriptor;
  /**
   * Tags / ref names, as the source spells them: `docker save` RepoTags (`busybox:1.36`), an index.json
   * entry's `io.containerd.image.name` then `org.opencontainers.image.ref.name` (`latest`), a registry
   * reference in canonical form. Empty when the source gives it none.
   */
  readonly names: readonly string[];
}

/**
 * Read access to one source's content. Implementations: RegistryBlobReader (./registry.ts),
 * OciLayoutReader over a directory or an OCI archive tar (./layout.ts), DockerSaveReader (./docker-save.ts),
 * StoreBlobReader (./store.ts). A reader holds open files or connections: `close()` it.
 */
export interface BlobReader {
  readonly kind: SourceKind;
  /** Where the content lives, for messages: a path, or `registry/repository`. */
  readonly where: string;
  /**
   * The top-level images, in the source's order: an index.json's entries; one per `docker save`
   * manifest.json entry; for a registry, the one descriptor its reference resolves to. The index walk
   * (./walk.ts) starts here and chooses among them by name, digest and platform.
   */
  roots(options?: ReadOptions): Promise<NamedDescriptor[]>;
  /**
   * Opens a blob's bytes — whole, or `length` bytes from `offset`. NOT verified: a range cannot be,
   * and whole-blob consumers (the store's put, the flattener) hash what they read anyway; wrap the
   * stream in `VerifyingStream` (src/digest) otherwise. ERR_NOT_FOUND when the source lacks the blob.
   */
  open(desc: Descriptor, options?: OpenBlobOptions): Promise<Readable>;
  /**
   * A small blob (manifest, index, config) whole in memory, checked against `desc.digest` and
   * `desc.size`; over `maxBytes` is ERR_TOO_LARGE before anything is read where the source knows the
   * size (limits: documentLimits() in src/manifest/limits.ts, the registry
   * client's `maxManifestBytes`).
   */
  readBytes(desc: Descriptor, maxBytes: number, options?: ReadOptions): Promise<Buffer>;
  /** Releases files and connections the reader holds; reads after close are undefined behaviour. */
  close(): Promise<void>;
}

/**
 * A reader whose blobs come over a network and should be downloaded into the store resumably
 * (registry): `openRange` makes ONE attempt from `offset` and says where the body really starts (0 when
 * the server ignored Range), exactly the store's RangeOpener contract (src/store/fetch.ts), which
 * resumes, retries and verifies. Local readers do not have it.
 */
export interface RemoteBlobReader extends BlobReader {
  openRange(desc: Descriptor, offset: number, options?: ReadOptions): Promise<{ stream: Readable; offset: number; from: string }>;
  /** The retry policy / throughput rule the store's fetch should apply to this reader's blobs. */
  readonly retryPolicy?: import('../util/retry.js').RetryPolicy;
  readonly throughputRule?: import('../util/throughput.js').ThroughputRule;
}

/** True for readers whose blobs should be fetched into the store (see RemoteBlobReader). */
export function isRemoteReader(reader: BlobReader): reader is RemoteBlobReader {
  return typeof (reader as Partial<RemoteBlobReader>).openRange === 'function';
}
