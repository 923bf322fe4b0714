/**
 * Any BlobReader (src/content: registry, docker-save tar, OCI archive, OCI layout directory, the store)
 * as a PushSource: push needs nothing from a source but its root descriptor and blobs by descriptor.
 */
import type { Readable } from 'node:stream';
import type { BlobReader } from '../content/blob-reader.js';
import { documentLimits } from '../manifest/limits.js';
import type { Descriptor } from '../manifest/types.js';
import type { PushSource } from './types.js';

export interface ReaderSourceOptions {
  /** The registry repository the reader reads, for cross-repository mounts. */
  readonly origin?: { readonly registry: string; readonly repository: string };
  /** Said to the user (e.g. a classic `docker save` image's manifest was built fresh). */
  readonly notes?: readonly string[];
  /** Cap for manifests, indexes and configs (default: the larger of documentLimits()' manifest and config caps). */
  readonly maxBytes?: number;
  /** The names the source gives the image (NamedDescriptor's `names`). */
  readonly names?: readonly string[];
  /** Every blob the reader gives was verified when stored (PushSource.verified). */
  readonly verified?: boolean;
  /** `root`'s bytes when the caller already read them (the index walk did): not read again. */
  readonly rootBytes?: Buffer;
  readonly signal?: AbortSignal;
}

/** Reads `root` (a manifest or index the reader offers) and wraps the reader; closing it closes the reader. */
export async function readerSource(reader: BlobReader, root: Descriptor, options: ReaderSourceOptions = {}): Promise<PushSource> {
  const limits = documentLimits();
  const cap = options.maxBytes ?? Math.max(limits.maxManifestBytes, limits.maxConfigBytes);
  const bytes = options.rootBytes ?? (await reader.readBytes(root, cap, options.signal ? { signal: options.signal } : {}));
  return {
    root: { descriptor: root, bytes },
    ...(options.origin ? { origin: options.origin } : {}),
    ...(options.notes ? { notes: options.notes } : {}),
    ...(options.names ? { names: options.names } : {}),
    ...(options.verified ? { verified: true } : {}),
    readBytes: (desc: Descriptor, signal?: AbortSignal) => reader.readBytes(desc, cap, signal ? { signal } : {}),
    open: (desc: Descriptor, offset: number, signal?: AbortSignal): Promise<Readable> => reader.open(desc, { offset, ...(signal ? { signal } : {}) }),
    close: () => reader.close(),
  };
}
