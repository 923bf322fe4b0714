/** Which platforms an image offers, from its index, or from a single manifest's config. */
import { isAttestation, parseImageConfig, parseManifestDocument } from '../manifest/index.js';
import type { Descriptor } from '../manifest/types.js';
import { normalizePlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import type { Reference } from '../reference/types.js';
import type { CallOptions, RegistryClient } from './client.js';

export interface PlatformEntry {
  /** Absent for index entries that carry no platform. */
  readonly platform?: Platform;
  /** The image manifest for this platform. */
  readonly descriptor: Descriptor;
}

export async function listPlatforms(client: RegistryClient, ref: Reference, options: CallOptions = {}): Promise<PlatformEntry[]> {
  const fetched = await client.fetchManifest(ref, options);
  const doc = parseManifestDocument(fetched.bytes, fetched.mediaType);
  if (doc.kind === 'index') {
    return doc.index.manifests
      .filter((d) => !isAttestation(d))
      .map((d) => (d.platform !== undefined ? { platform: d.platform, descriptor: d } : { descriptor: d }));
  }
  const configBytes = await client.fetchBlobBytes(ref, doc.manifest.config, options);
  const config = parseImageConfig(configBytes);
  const platform = normalizePlatform({
    os: config.os,
    architecture: config.architecture,
    ...(config.variant !== undefined ? { variant: config.variant } : {}),
  });
  return [{ platform, descriptor: { mediaType: fetched.mediaType, digest: fetched.digest, size: fetched.size } }];
}
