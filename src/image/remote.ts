/**
 * An image in a registry as an ImageSource: resolve the reference, walk indexes to the wanted
 * platform, fetch the config; layers download (resumably, verified) into the blob store and open from there.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import {
  checkConfigPlatform,
  choosePlatformManifest,
  parseImageConfig,
  parseManifestDocument,
  type Descriptor,
  type ImageManifest,
} from '../manifest/index.js';
import { formatPlatform, hostPlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { formatReference } from '../reference/index.js';
import type { Reference } from '../reference/types.js';
import type { RegistryClient } from '../registry/index.js';
import type { BlobStore } from '../store/index.js';
import { manifestLayers } from './archive.js';
import { createLimiter } from './prepare.js';
import type { ImageSource, OpenLayerOptions } from './source.js';

export interface RemoteOptions {
  client: RegistryClient;
  store: BlobStore;
  platform?: Platform;
  explicitPlatform?: boolean;
  signal?: AbortSignal;
  /** Layers downloaded at once (default 4). */
  concurrency?: number;
}

const MAX_INDEX_DEPTH = 4;

export async function openRemote(ref: Reference, options: RemoteOptions): Promise<ImageSource> {
  const { client, store, signal } = options;
  const call = signal ? { signal } : {};
  const wanted = options.platform ?? hostPlatform();
  let fetched = await client.fetchManifest(ref, call);
  let indexDigest: string | undefined;
  let manifest: ImageManifest | undefined;
  for (let depth = 0; !manifest; depth++) {
    if (depth > MAX_INDEX_DEPTH) throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${formatReference(ref)}: image indexes nested too deeply`);
    const doc = parseManifestDocument(fetched.bytes, fetched.mediaType);
    if (doc.kind === 'manifest') {
      manifest = doc.manifest;
      break;
    }
    indexDigest ??= fetched.digest;
    const chosen: Descriptor = choosePlatformManifest(doc.index, wanted);
    fetched = await client.fetchManifest({ registry: ref.registry, repository: ref.repository, digest: chosen.digest }, call);
  }
  const configBytes = await client.fetchBlobBytes(ref, manifest.config, call);
  const config = parseImageConfig(configBytes);
  checkConfigPlatform(config, wanted, options.explicitPlatform ?? false);

  const limit = createLimiter(options.concurrency ?? 4);
  const download = async (desc: Descriptor, open: OpenLayerOptions = {}) => {
    await limit(() => store.fetchInto(desc, (offset) => client.openBlob(ref, desc, { offset, ...call }), {
      ...(open.signal ? { signal: open.signal } : call),
      ...(open.onProgress ? { onProgress: open.onProgress } : {}),
    }));
    return store.open(desc.digest);
  };
  const where = formatReference(ref);
  const layers = manifestLayers(manifest, config.rootfs.diff_ids, download, where);
  return {
    info: {
      kind: 'registry',
      reference: where,
      manifestDigest: fetched.digest,
      ...(indexDigest ? { indexDigest } : {}),
      configDigest: manifest.config.digest,
      platform: formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }),
    },
    config,
    layers,
  };
}
