/**
 * The local store as a BlobReader: every blob a pull or load kept (layers, and the manifests,
 * indexes and configs it resolved), by digest, so a cached image can be pushed or served byte for byte
 * without the source. The store knows no names: roots are given (`forDigests`: the index or manifest
 * an image dir's `config.json` records in `source`).
 */
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits, parseManifestDocument, type Descriptor } from '../manifest/index.js';
import type { BlobStore } from '../store/index.js';
import type { BlobReader, NamedDescriptor, OpenBlobOptions } from './blob-reader.js';

export class StoreBlobReader implements BlobReader {
  readonly kind = 'store' as const;

  constructor(
    private readonly store: BlobStore,
    private readonly rootList: readonly NamedDescriptor[],
  ) {}

  /**
   * A reader whose roots are stored manifests or indexes named by digest (their media type and size
   * read from the stored bytes). ERR_NOT_FOUND when one is not in the store (an image pulled before the
   * store kept manifests: pull it again).
   */
  static async forDigests(store: BlobStore, roots: readonly { digest: string; names: readonly string[] }[]): Promise<StoreBlobReader> {
    const named: NamedDescriptor[] = [];
    for (const r of roots) {
      const bytes = await store.readBytes(r.digest, documentLimits().maxManifestBytes);
      const doc = parseManifestDocument(bytes, undefined);
      const mediaType = doc.kind === 'index' ? doc.index.mediaType : doc.manifest.mediaType;
      named.push({ descriptor: { mediaType, digest: r.digest, size: bytes.length }, names: r.names });
    }
    return new StoreBlobReader(store, named);
  }

  /**
   * A cached image's source as a reader: its root is the top index it was chosen from, else its
   * manifest (`config.json`'s `source`). ERR_NOT_FOUND when the image has no manifest (a classic
   * `docker save`) or the store lacks it (prepared before the store kept manifests: pull or load it again).
   */
  static forSource(store: BlobStore, source: { readonly indexDigest?: string; readonly manifestDigest?: string; readonly reference?: string }): Promise<StoreBlobReader> {
    const digest = source.indexDigest ?? source.manifestDigest;
    if (digest === undefined) throw new VmimgError(ErrorCode.NOT_FOUND, `${source.reference ?? 'the image'} came without a manifest (a classic docker save): nothing to read by digest`);
    return StoreBlobReader.forDigests(store, [{ digest, names: source.reference !== undefined ? [source.reference] : [] }]);
  }

  get where(): string {
    return this.store.root;
  }

  async roots(): Promise<NamedDescriptor[]> {
    return [...this.rootList];
  }

  async open(desc: Descriptor, options: OpenBlobOptions = {}): Promise<Readable> {
    return this.store.open(desc.digest, { ...(options.offset !== undefined ? { offset: options.offset } : {}), ...(options.length !== undefined ? { length: options.length } : {}) });
  }

  async readBytes(desc: Descriptor, maxBytes: number): Promise<Buffer> {
    if (desc.size > maxBytes) throw new VmimgError(ErrorCode.TOO_LARGE, `blob ${desc.digest} is ${desc.size} bytes, over the ${maxBytes}-byte limit`);
    const bytes = await this.store.readBytes(desc.digest, maxBytes);
    if (bytes.length !== desc.size) throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `stored blob ${desc.digest} is ${bytes.length} bytes, its descriptor says ${desc.size}`);
    return bytes;
  }

  async close(): Promise<void> {}
}
