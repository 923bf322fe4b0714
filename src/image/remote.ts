/**
 * An image in a registry as an ImageSource: resolve the reference, walk indexes to the wanted
 * platform, fetch the config; layers download (resumably, verified) into the blob store and open from there.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import {
  choosePlatformManifest,
  configPlatform,
  parseImageConfig,
  parseManifestDocument,
  type Descriptor,
  type ImageManifest,
} from '../manifest/index.js';
import { formatPlatform, hostPlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { formatReference } from '../reference/index.js';
import type { Reference } from '../reference/types.js';
import type { CallOptions, RegistryClient } from '../registry/index.js';
import type { NoticeListener } from '../util/retry.js';
import type { BlobStore } from '../store/index.js';
import { manifestLayers, platformWarning } from './archive.js';
import { teeDownload } from './tee-download.js';
import type { Readable } from 'node:stream';
import type { ImageSource, OpenLayerOptions } from './source.js';

export interface RemoteOptions {
  client: RegistryClient;
  store: BlobStore;
  platform?: Platform;
  explicitPlatform?: boolean;
  signal?: AbortSignal;
  /** Retry waits and stalls while resolving the manifest and config (layers get theirs when opened). */
  onNotice?: NoticeListener;
}

const MAX_INDEX_DEPTH = 4;

/** Follows (possibly nested) indexes to the wanted platform's manifest; `indexDigest` is the top index's. */
async function resolveManifest(
  client: RegistryClient,
  ref: Reference,
  wanted: Platform,
  call: CallOptions,
): Promise<{ manifest: ImageManifest; manifestDigest: string; indexDigest?: string }> {
  let fetched = await client.fetchManifest(ref, call);
  let indexDigest: string | undefined;
  for (let depth = 0; ; depth++) {
    if (depth > MAX_INDEX_DEPTH) throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${formatReference(ref)}: image indexes nested too deeply`);
    const doc = parseManifestDocument(fetched.bytes, fetched.mediaType);
    if (doc.kind === 'manifest') return { manifest: doc.manifest, manifestDigest: fetched.digest, ...(indexDigest ? { indexDigest } : {}) };
    indexDigest ??= fetched.digest;
    const chosen: Descriptor = choosePlatformManifest(doc.index, wanted);
    fetched = await client.fetchManifest({ registry: ref.registry, repository: ref.repository, digest: chosen.digest }, call);
  }
}

export async function openRemote(ref: Reference, options: RemoteOptions): Promise<ImageSource> {
  const { client, store, signal } = options;
  const call = { ...(signal ? { signal } : {}), ...(options.onNotice ? { onNotice: options.onNotice } : {}) };
  const wanted = options.platform ?? hostPlatform();
  const { manifest, manifestDigest, indexDigest } = await resolveManifest(client, ref, wanted, call);
  const configBytes = await client.fetchBlobBytes(ref, manifest.config, call);
  const config = parseImageConfig(configBytes);
  const warnings = platformWarning(config, wanted, options.explicitPlatform ?? false);

  const downloads = new Map<string, Promise<boolean>>(); // verdicts; settled promises are handled in teeDownload
  /** From the store when the blob is there (or arriving); else downloading, teed into the consumer. */
  const download = async (desc: Descriptor, open: OpenLayerOptions = {}): Promise<Readable> => {
    const pending = downloads.get(desc.digest);
    if (pending) await pending;
    if (pending || (await store.has(desc.digest, desc.size))) {
      open.onProgress?.(desc.size);
      return store.open(desc.digest);
    }
    const signal = open.signal ?? options.signal;
    const openRange = (offset: number, s?: AbortSignal) =>
      client.openBlob(ref, desc, { offset, ...(s ?? signal ? { signal: (s ?? signal)! } : {}), ...(open.onNotice ? { onNotice: open.onNotice } : {}) });
    const tee = teeDownload(store, desc, openRange, {
      ...(signal ? { signal } : {}),
      ...(open.onProgress ? { onProgress: open.onProgress } : {}),
      ...(open.onNotice ? { onNotice: open.onNotice } : {}),
      retry: client.retryPolicy,
      throughput: client.throughputRule,
    });
    downloads.set(desc.digest, tee.verdict);
    return tee.stream;
  };
  const where = formatReference(ref);
  const layers = manifestLayers(manifest, config.rootfs.diff_ids, download, where).map((layer) => ({
    ...layer,
    // Only a blob that came from the store can be stale; a fresh download failing is the registry's fault.
    invalidate: async () => !downloads.has(layer.digest!) && (await store.delete(layer.digest!)),
    verdict: () => downloads.get(layer.digest!),
  }));
  return {
    info: {
      kind: 'registry',
      reference: where,
      manifestDigest,
      ...(indexDigest ? { indexDigest } : {}),
      configDigest: manifest.config.digest,
      platform: formatPlatform(configPlatform(config)),
    },
    config,
    layers,
    warnings,
  };
}
