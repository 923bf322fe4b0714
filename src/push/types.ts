/**
 * The two sides of a push. A PushSource hands out an image's raw manifest or index and its blobs by
 * descriptor (any source: registry, archive, layout directory, cache); a PushSink ingests them
 * (a registry repository, an OCI layout directory). Manifests travel as their exact bytes, so digests
 * stay what the source had. Adding a sink means implementing PushSink alone.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../manifest/types.js';

/** The manifest or index the user named, as raw bytes with their descriptor. */
export interface RootManifest {
  readonly descriptor: Descriptor;
  readonly bytes: Buffer;
}

export interface PushSource {
  readonly root: RootManifest;
  /** A manifest, index or config by descriptor, verified, in memory (capped by the source). */
  readBytes(desc: Descriptor, signal?: AbortSignal): Promise<Buffer>;
  /** A blob's bytes from `offset` on (the sink verifies what it receives). */
  open(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<Readable>;
  /** The registry repository the blobs live in, when the source is one (for cross-repository mounts). */
  readonly origin?: { readonly registry: string; readonly repository: string };
  /** Said to the user, e.g. that a classic `docker save` image got a freshly built manifest. */
  readonly notes?: readonly string[];
  /** The names the source gives the image (RepoTags, ref names, the reference), as NamedDescriptor's. */
  readonly names?: readonly string[];
  /**
   * Every blob `open` gives was checked against its digest when it was stored (the local store, whose
   * `put` verifies before it renames into place): a registry sink need not hash it again.
   */
  readonly verified?: boolean;
  close?(): Promise<void>;
}

/** What a sink did with one blob. */
export type BlobOutcome = 'exists' | 'mounted' | 'uploaded';

export interface PushSink {
  /** `registry/repo:tag` or `oci:DIR:tag`, for messages. */
  readonly name: string;
  /** The registry this sink writes to, when it is one (mounts only happen within one registry). */
  readonly registry?: string;
  has(desc: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** Cross-repository mount; false when declined (the caller uploads instead). */
  mount?(desc: Descriptor, fromRepository: string, signal?: AbortSignal): Promise<boolean>;
  /** Writes a blob; `onBytes` gets bytes confirmed so far; `verified`: the source checked its bytes already (PushSource.verified). */
  writeBlob(desc: Descriptor, open: (offset: number) => Promise<Readable>, onBytes: (sent: number) => void, signal?: AbortSignal, verified?: boolean): Promise<void>;
  /**
   * Stores a manifest or index; named by `tag` when given, else by its digest only. `root` is the
   * image pushed (last); other calls are an index's children.
   */
  putManifest(desc: Descriptor, bytes: Buffer, tag: string | undefined, root: boolean, signal?: AbortSignal): Promise<void>;
  /** After a failed push: undo what this push wrote, where the sink can (an OCI layout directory does). */
  abort?(): Promise<void>;
}

/** Progress of a push, per blob and per manifest. */
export type PushEvent =
  | { readonly type: 'blob'; readonly digest: string; readonly size: number; readonly state: 'checking' | 'uploading' | BlobOutcome; readonly bytes: number }
  | { readonly type: 'manifest'; readonly digest: string; readonly mediaType: string; readonly tag?: string | undefined; readonly state: 'pushed' };
