/**
 * The images of a `docker save` tar (classic, or Docker 25+ with an OCI layout inside) as selection
 * candidates (select.ts): names from `manifest.json` RepoTags (and index.json annotations), the config
 * digest of each entry, and — Docker 25+ only — manifest digests. Docker 25+ saves of images named by
 * digest may leave an image out of index.json (moby#51389); its manifest is still a blob of the tar, found
 * when a digest selector names nothing listed.
 */
import { sha256Digest } from '../digest/index.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, MediaType, configPlatform, parseImageConfig, parseManifestDocument, type ImageConfig } from '../manifest/index.js';
import { listOciImages } from './oci-images.js';
import type { ImageCandidate } from './select.js';
import type { TarMembers } from './tar-members.js';

export interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export interface DockerImage extends ImageCandidate {
  manifestEntry: DockerManifestEntry;
  config: ImageConfig;
  configDigest: string;
  digests: string[];
}

const BLOB = /^blobs\/sha256\/([0-9a-f]{64})$/;

/** One candidate per manifest.json entry, in order. */
export async function listDockerImages(tar: TarMembers, entries: readonly DockerManifestEntry[]): Promise<DockerImage[]> {
  const images = await Promise.all(
    entries.map(async (manifestEntry, entry): Promise<DockerImage> => {
      const bytes = await tar.read(manifestEntry.Config, MAX_CONFIG_BYTES);
      const config = parseImageConfig(bytes);
      return { names: [...(manifestEntry.RepoTags ?? [])], digests: [], configDigest: sha256Digest(bytes), platform: configPlatform(config), entry, manifestEntry, config };
    }),
  );
  if (tar.has('index.json') && tar.has('oci-layout')) await addIndexedDigests(tar, images);
  return images;
}

/** Docker 25+: manifest digests and names of the images index.json lists, matched by config digest. */
async function addIndexedDigests(tar: TarMembers, images: DockerImage[]): Promise<void> {
  const top = parseManifestDocument(await tar.read('index.json', MAX_MANIFEST_BYTES), MediaType.OCI_INDEX);
  if (top.kind !== 'index') return;
  const read = async (d: { digest: string }, max: number) => tar.read(`blobs/${d.digest.replace(':', '/')}`, max);
  let listed;
  try {
    listed = await listOciImages(top.index, read, tar.path);
  } catch {
    return; // manifest.json is what docker load reads; a broken OCI half only loses the digests
  }
  for (const oci of listed) {
    for (const image of images.filter((i) => i.configDigest === oci.configDigest)) {
      image.digests.push(...oci.digests.filter((d) => !image.digests.includes(d)));
      image.names = [...new Set([...image.names, ...oci.names])];
    }
  }
}

/**
 * Docker 25+: manifests that are blobs of the tar but not in index.json, added to the images whose
 * config they name. Reads only small blobs that no manifest.json entry uses as config or layer.
 * Returns whether any digest was added.
 */
export async function addUnlistedManifests(tar: TarMembers, images: DockerImage[]): Promise<boolean> {
  const known = new Set(images.flatMap((i) => [i.manifestEntry.Config, ...i.manifestEntry.Layers, ...i.digests.map((d) => `blobs/${d.replace(':', '/')}`)]));
  let added = false;
  for (const name of tar.names()) {
    const hex = BLOB.exec(name)?.[1];
    if (hex === undefined || known.has(name) || tar.require(name).size > MAX_MANIFEST_BYTES) continue;
    const bytes = await tar.read(name, MAX_MANIFEST_BYTES);
    if (sha256Digest(bytes) !== `sha256:${hex}`) continue;
    const config = configDigestOf(bytes);
    for (const image of images.filter((i) => i.configDigest === config)) {
      image.digests.push(`sha256:${hex}`);
      added = true;
    }
  }
  return added;
}

function configDigestOf(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { config?: { digest?: unknown }; layers?: unknown };
    return typeof doc?.config?.digest === 'string' && Array.isArray(doc.layers) ? doc.config.digest : undefined;
  } catch {
    return undefined;
  }
}
