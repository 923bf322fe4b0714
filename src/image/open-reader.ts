/**
 * Any image source as a BlobReader, by what the user named: a registry reference, an image tar
 * (`docker save` or OCI archive), an OCI layout directory, or a cached image (its manifests and
 * blobs from the store). Consumers that need content by descriptor — push, serve, lazy reads —
 * start here and never look at a source's internals.
 */
import type { BlobReader } from '../content/blob-reader.js';
import { OciLayoutReader, directoryFiles } from '../content/layout.js';
import { RegistryBlobReader } from '../content/registry.js';
import { StoreBlobReader } from '../content/store.js';
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
   * A prepared image of `cache`: its root is the index or manifest its `config.json` records. Layer
   * blobs are there only for images pulled from a registry (loads keep the flattened layers alone);
   * a classic `docker save` image has no manifest (ERR_NOT_FOUND).
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
    case 'cached':
      return StoreBlobReader.forSource(new BlobStore(spec.cache.root), spec.image.config.source);
  }
}
