/**
 * Any BlobReader as an ImageSource (what the prepare pipeline consumes): the one index walk
 * (src/content/walk.ts) chooses the image; layers open through the reader — or, for a remote reader,
 * download into the store (resumable, verified) while they are teed to the flattener. The walk's raw
 * manifest, index and config bytes ride along as `documents`, for the store to keep.
 */
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { configPlatform, type Descriptor, type ImageManifest } from '../manifest/index.js';
import { formatPlatform } from '../platform/index.js';
import type { BlobStore } from '../store/index.js';
import { isRemoteReader, type BlobReader, type RemoteBlobReader } from '../content/blob-reader.js';
import { SYNTHESIZED_ANNOTATION } from '../content/docker-save.js';
import { chooseImage, type WalkOptions, type WalkedImage } from '../content/walk.js';
import { isDigestSelector, nameMatches } from '../content/select.js';
import { teeDownload } from './tee-download.js';
import type { ImageSource, OpenLayerOptions, SourceLayer } from './source.js';

export interface ReaderSourceOptions extends WalkOptions {
  /** Where a remote reader's layers download to; required for those. */
  readonly store?: BlobStore;
  /** The name recorded as `source.reference` (default: see `sourceReference`). */
  readonly reference?: string;
}

/** Walks `reader` to the image `options` name and returns it as an ImageSource; closing it closes the reader. */
export async function openReaderSource(reader: BlobReader, options: ReaderSourceOptions = {}): Promise<ImageSource> {
  const walked = await chooseImage(isRemoteReader(reader) && options.store !== undefined ? storeFirst(reader, options.store) : reader, options);
  const { manifest, config } = walked;
  const synthesized = walked.entry.root.descriptor.annotations?.[SYNTHESIZED_ANNOTATION] !== undefined;
  let layers: SourceLayer[];
  if (isRemoteReader(reader)) {
    if (options.store === undefined) throw new VmimgError(ErrorCode.INTERNAL, `${reader.where}: a remote source needs a store to download into`);
    const remote = storeBacked(reader, options.store, options.signal);
    layers = manifestLayers(manifest.parsed, config.parsed.rootfs.diff_ids, remote.open, reader.where).map((layer, i) => {
      const desc = manifest.parsed.layers[i]!;
      return { ...layer, invalidate: () => remote.invalidate(desc), verdict: () => remote.verdict(desc) };
    });
  } else {
    const open = (d: Descriptor, o?: OpenLayerOptions) => reader.open(d, o?.signal ? { signal: o.signal } : {});
    layers = manifestLayers(manifest.parsed, config.parsed.rootfs.diff_ids, open, reader.where);
    // A built manifest's layer digests are the tars' diff_ids or vmimg's hashes: nothing to check or record.
    if (synthesized) layers = layers.map(({ digest: _digest, ...rest }) => rest);
  }
  const indexDigests = walked.indexes.map((i) => i.descriptor.digest);
  return {
    info: {
      kind: reader.kind,
      reference: options.reference ?? sourceReference(reader, walked, options.tag),
      ...(reader.kind === 'docker-archive' || reader.kind === 'oci-archive' || reader.kind === 'oci-layout' ? { path: reader.where } : {}),
      ...(synthesized ? {} : { manifestDigest: manifest.descriptor.digest }),
      ...(indexDigests.length > 0 ? { indexDigest: indexDigests[0]! } : {}),
      ...(indexDigests.length > 1 ? { indexDigests } : {}),
      configDigest: config.descriptor.digest,
      platform: formatPlatform(configPlatform(config.parsed)),
    },
    config: config.parsed,
    layers,
    warnings: [...walked.warnings],
    documents: synthesized ? [config] : [...walked.indexes, manifest, config],
    close: () => reader.close(),
  };
}

/**
 * The name an image is recorded under: a registry's reference; a `docker save` tag (the one `--tag`
 * matched, else the first) or the tar's path; for OCI archives and layouts a full reference when the
 * entry names one (`io.containerd.image.name`, or a ref name like `docker.io/x/y:1`), else
 * `<path>:<ref name>` — a bare ref name such as `latest` is only a tag and must not read as an image
 * called "latest" — else the path.
 */
export function sourceReference(reader: BlobReader, walked: WalkedImage, tag: string | undefined): string {
  const names = walked.entry.names;
  const name = (tag === undefined ? undefined : names.find((n) => nameMatches(n, tag))) ?? names[0];
  // an unnamed image picked by digest is one of several a tar or layout holds: each gets its own name
  if (name === undefined && reader.kind !== 'registry' && tag !== undefined && isDigestSelector(tag)) return `${reader.where}@${walked.entry.root.descriptor.digest}`;
  if (reader.kind === 'registry' || name === undefined) return name ?? reader.where;
  if (reader.kind === 'docker-archive') return name;
  return name.includes('/') || name.includes(':') ? name : `${reader.where}:${name}`;
}

/** Pairs a manifest's layer descriptors with the config's diff_ids. */
export function manifestLayers(
  manifest: ImageManifest,
  diffIds: readonly string[],
  openBlob: (desc: Descriptor, options?: OpenLayerOptions) => Promise<Readable>,
  where: string,
): SourceLayer[] {
  if (manifest.layers.length !== diffIds.length) {
    throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${where}: manifest has ${manifest.layers.length} layers but the config has ${diffIds.length} diff_ids`);
  }
  return manifest.layers.map((desc, i) => ({
    diffId: diffIds[i]!,
    digest: desc.digest,
    size: desc.size,
    mediaType: desc.mediaType,
    open: (options?: OpenLayerOptions) => openBlob(desc, options),
  }));
}

/** A remote reader's layers: from the store when there (or arriving), else downloading into it, teed. */
function storeBacked(reader: RemoteBlobReader, store: BlobStore, sourceSignal: AbortSignal | undefined) {
  const downloads = new Map<string, Promise<boolean>>(); // verdicts; settled promises are handled in teeDownload
  const open = async (desc: Descriptor, o: OpenLayerOptions = {}): Promise<Readable> => {
    const pending = downloads.get(desc.digest);
    if (pending) await pending;
    if (pending || (await store.has(desc.digest, desc.size))) {
      o.onProgress?.(desc.size);
      return store.open(desc.digest);
    }
    const signal = o.signal ?? sourceSignal;
    const openRange = (offset: number, s?: AbortSignal) =>
      reader.openRange(desc, offset, { ...((s ?? signal) ? { signal: (s ?? signal)! } : {}), ...(o.onNotice ? { onNotice: o.onNotice } : {}) });
    const tee = teeDownload(store, desc, openRange, {
      ...(signal ? { signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.onNotice ? { onNotice: o.onNotice } : {}),
      ...(reader.retryPolicy ? { retry: reader.retryPolicy } : {}),
      ...(reader.throughputRule ? { throughput: reader.throughputRule } : {}),
    });
    downloads.set(desc.digest, tee.verdict);
    return tee.stream;
  };
  return {
    open,
    // Only a blob that came from the store can be stale; a fresh download failing is the registry's fault.
    invalidate: async (desc: Descriptor) => !downloads.has(desc.digest) && (await store.delete(desc.digest)),
    verdict: (desc: Descriptor) => downloads.get(desc.digest),
  };
}

/**
 * The walk's view of a remote reader: manifests by digest and configs come from the store when it holds
 * them (the store verifies what it reads), so a re-pull of a cached image (or of one `vmimg serve` stored
 * in the same cache) asks the registry for the tag alone. Everything else goes to the reader.
 */
function storeFirst(reader: RemoteBlobReader, store: BlobStore): RemoteBlobReader {
  return {
    openRange: (d, offset, o) => reader.openRange(d, offset, o),
    kind: reader.kind,
    where: reader.where,
    roots: (o) => reader.roots(o),
    open: (d, o) => reader.open(d, o),
    close: () => reader.close(),
    readBytes: async (desc, max, o) => {
      if (await store.has(desc.digest, desc.size)) {
        const local = await store.readBytes(desc.digest, max).catch(() => undefined); // corrupt: the registry's copy
        if (local !== undefined) return local;
      }
      return reader.readBytes(desc, max, o);
    },
  };
}
