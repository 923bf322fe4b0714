/**
 * Any image source as a BlobReader, by what the user named: a registry reference, an image tar
 * (`docker save` or OCI archive), an OCI layout directory, or a cached image (its manifests and
 * blobs from the store). Consumers that need content by descriptor — push, serve, lazy reads —
 * start here and never look at a source's internals.
 */
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError, isVmimgError } from '../errors.js';
import type { BlobReader, NamedDescriptor, OpenBlobOptions, ReadOptions } from '../content/blob-reader.js';
import { OciLayoutReader, directoryFiles } from '../content/layout.js';
import { RegistryBlobReader } from '../content/registry.js';
import { StoreBlobReader } from '../content/store.js';
import type { Descriptor } from '../manifest/types.js';
import type { Reference } from '../reference/types.js';
import type { RegistryClient } from '../registry/client.js';
import { BlobStore } from '../store/index.js';
import { openArchiveReader } from './archive.js';
import type { CacheLayout } from './cache.js';
import type { Image } from './image-dir.js';

export type SourceSpec =
  /** The client stays the caller's to close. */
  | { readonly kind: 'registry'; readonly reference: Reference; readonly client: RegistryClient }
  | { readonly kind: 'tar'; readonly path: string }
  | { readonly kind: 'layout'; readonly dir: string }
  /**
   * A prepared image of `cache`: its root is the index or manifest its `config.json` records, read from
   * the store. Layer blobs are in the store for images pulled from a registry; for images loaded from a
   * tar or layout directory they are read from that file (`source.path`) while it still exists. A
   * classic `docker save` image has no manifest (ERR_NOT_FOUND).
   */
  | { readonly kind: 'cached'; readonly image: Pick<Image, 'config'>; readonly cache: CacheLayout };

/** Opens the BlobReader for `spec` (see SourceSpec); errors as the readers' (ERR_NOT_FOUND, ERR_INVALID_ARCHIVE, ...). */
export async function openSourceReader(spec: SourceSpec): Promise<BlobReader> {
  switch (spec.kind) {
    case 'registry':
      return new RegistryBlobReader(spec.client, spec.reference);
    case 'tar':
      return openArchiveReader(spec.path);
    case 'layout':
      return OciLayoutReader.open(directoryFiles(spec.dir), 'oci-layout');
    case 'cached': {
      const source = spec.image.config.source;
      const store = await StoreBlobReader.forSource(new BlobStore(spec.cache.root), source);
      const path = source.path;
      if (path === undefined || source.kind === 'registry') return store;
      return new FallbackReader(store, path, () => (source.kind === 'oci-layout' ? openSourceReader({ kind: 'layout', dir: path }) : openArchiveReader(path)));
    }
  }
}

/** The store first; a blob it lacks from the source the image was loaded from (opened on the first miss). */
class FallbackReader implements BlobReader {
  readonly kind = 'store' as const;
  private second: Promise<BlobReader> | undefined;

  constructor(
    private readonly first: BlobReader,
    /** The tar or layout directory the image was loaded from (for the error when it is gone). */
    private readonly secondPath: string,
    private readonly openSecond: () => Promise<BlobReader>,
  ) {}

  get where(): string {
    return this.first.where;
  }

  roots(options?: ReadOptions): Promise<NamedDescriptor[]> {
    return this.first.roots(options);
  }

  open(desc: Descriptor, options?: OpenBlobOptions): Promise<Readable> {
    return this.either((r) => r.open(desc, options));
  }

  readBytes(desc: Descriptor, maxBytes: number, options?: ReadOptions): Promise<Buffer> {
    return this.either((r) => r.readBytes(desc, maxBytes, options));
  }

  async close(): Promise<void> {
    await this.first.close();
    await (await this.second?.catch(() => undefined))?.close();
  }

  private async either<T>(read: (r: BlobReader) => Promise<T>): Promise<T> {
    try {
      return await read(this.first);
    } catch (err) {
      if (!isVmimgError(err, ErrorCode.NOT_FOUND)) throw err;
      this.second ??= this.openSecond();
      return read(await this.second.catch((why: unknown) => Promise.reject(this.gone(err, why))));
    }
  }

  /** The store lacks a layer blob and the archive that holds it cannot be opened (moved, deleted). */
  private gone(missing: VmimgError, why: unknown): VmimgError {
    return new VmimgError(ErrorCode.NOT_FOUND, `${missing.message}, and ${this.secondPath}, which the image was loaded from and which holds its layer blobs, cannot be read (${(why as Error).message})`, {
      hint: 'a loaded image keeps its layer blobs in its archive, not in the cache: load it again, or push or export from the archive itself',
      cause: why,
    });
  }
}
