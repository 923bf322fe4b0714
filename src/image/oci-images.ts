/**
 * The images an OCI layout's `index.json` reaches (an OCI archive's, an OCI layout directory's, the
 * OCI half of a Docker 25+ `docker save`), as selection candidates (select.ts). Nested indexes are
 * followed (depth ≤ 4), attestation manifests are left out; each image's manifest and config are read
 * (small, digest-checked blobs) so it can be chosen by manifest or config digest and by platform.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import {
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  configPlatform,
  isAttestation,
  parseImageConfig,
  parseManifestDocument,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '../manifest/index.js';
import type { ImageCandidate } from './select.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';
const MAX_DEPTH = 4;

/** Reads a blob named by a descriptor, checked against its digest, at most `max` bytes. */
export type BlobReader = (desc: Descriptor, max: number) => Promise<Buffer>;

export interface OciImage extends ImageCandidate {
  /** The image manifest's descriptor. */
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** The first index above the manifest, when it was reached through one. */
  indexDigest?: string;
  /** The top-level descriptor's name (containerd name, else ref name). */
  refName?: string;
}

/** The name an index.json descriptor gives its image: containerd's full name, else the OCI ref name. */
export function refNameOf(desc: Descriptor): string | undefined {
  return desc.annotations?.[CONTAINERD_NAME] ?? desc.annotations?.[REF_NAME];
}

/** Every image `top` (a layout's index.json) reaches, in index order. */
export async function listOciImages(index: ImageIndex, read: BlobReader, where: string): Promise<OciImage[]> {
  const images: OciImage[] = [];
  const visit = async (d: Descriptor, entry: number, above: string[], depth: number): Promise<void> => {
    if (isAttestation(d)) return;
    if (depth > MAX_DEPTH) throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${where}: image indexes nested too deeply`);
    const doc = parseManifestDocument(await read(d, MAX_MANIFEST_BYTES), d.mediaType);
    if (doc.kind === 'index') {
      for (const child of doc.index.manifests) await visit(child, entry, [...above, d.digest], depth + 1);
      return;
    }
    const config = parseImageConfig(await read(doc.manifest.config, MAX_CONFIG_BYTES));
    const top = index.manifests[entry]!;
    const refName = refNameOf(top);
    images.push({
      names: [top.annotations?.[CONTAINERD_NAME], top.annotations?.[REF_NAME]].filter((n): n is string => n !== undefined),
      digests: [d.digest, ...above],
      configDigest: doc.manifest.config.digest,
      platform: configPlatform(config),
      entry,
      descriptor: d,
      manifest: doc.manifest,
      config,
      ...(above.length > 0 ? { indexDigest: above[0]! } : {}),
      ...(refName !== undefined ? { refName } : {}),
    });
  };
  for (let i = 0; i < index.manifests.length; i++) await visit(index.manifests[i]!, i, [], 0);
  return images;
}
