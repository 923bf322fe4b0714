// A Docker 25+ style `docker save` tar, assembled without a Docker daemon.
//
// Docker 25 writes an OCI image layout plus the legacy files:
//   oci-layout, index.json, blobs/sha256/<hex> (config, OCI manifest and the
//   layers as *uncompressed* tars), manifest.json whose Config and Layers are
//   "blobs/sha256/<hex>" paths, and repositories.
// We get the uncompressed layers and config from skopeo's docker-archive, lay
// the files out the same way, and tar them with GNU tar (not our own writer).
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxLayout, type Arch, type ExtraLayer } from './busybox.js';
import { writeJsonBlob, OCI_INDEX, OCI_MANIFEST } from './oci-index.js';
import { toDockerArchive, type LayoutRef } from './skopeo.js';
import { run, tmpDir, removeNow } from './tools.js';

export interface DockerSaveV25Options {
  /** Image to save; default: a busybox image of `arch` (with `extraLayers`). */
  source?: LayoutRef;
  arch?: Arch;
  extraLayers?: ExtraLayer[];
  /** Name in manifest.json RepoTags; default 'busybox:latest'. */
  repoTag?: string;
  /** Output tar path; default: a new temp file. */
  file?: string;
}

export interface DockerSaveV25 {
  file: string;
  repoTag: string;
  manifestDigest: string;
  configDigest: string;
  /** Layer digests in order (= diff_ids, since the layers are uncompressed). */
  layerDigests: string[];
}

interface LegacyManifest {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

export async function buildDockerSaveV25(opts: DockerSaveV25Options = {}): Promise<DockerSaveV25> {
  const repoTag = opts.repoTag ?? 'busybox:latest';
  const source = opts.source ?? (await buildBusyboxLayout({ arch: opts.arch ?? 'amd64', extraLayers: opts.extraLayers }));
  const work = await tmpDir('vmimg-docker25-');
  const file = opts.file ?? join(await tmpDir('vmimg-docker25-out-'), 'docker-save-v25.tar');
  try {
    const classic = join(work, 'classic');
    mkdirSync(classic);
    await toDockerArchive(source, join(work, 'classic.tar'), repoTag);
    await run('tar', ['-xf', join(work, 'classic.tar'), '-C', classic]);
    const legacy = (JSON.parse(readFileSync(join(classic, 'manifest.json'), 'utf8')) as LegacyManifest[])[0];
    const out = join(work, 'out');
    mkdirSync(join(out, 'blobs', 'sha256'), { recursive: true });
    const config = await moveToBlobs(join(classic, legacy.Config), out);
    const layers = [];
    for (const l of legacy.Layers) layers.push(await moveToBlobs(join(classic, l), out));
    const manifest = writeJsonBlob(out, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    });
    writeLegacyFiles(out, repoTag, manifest, config.digest, layers.map((l) => l.digest));
    await run('tar', [
      '--sort=name', '--mtime=@0', '--mode=u+w', '--owner=0', '--group=0', '--numeric-owner', '--format=ustar',
      '-cf', file, '-C', out, 'blobs', 'index.json', 'manifest.json', 'oci-layout', 'repositories',
    ]);
    return { file, repoTag, manifestDigest: manifest.digest, configDigest: config.digest, layerDigests: layers.map((l) => l.digest) };
  } finally {
    removeNow(work);
  }
}

function writeLegacyFiles(
  out: string,
  repoTag: string,
  manifest: { digest: string; size: number },
  configDigest: string,
  layerDigests: string[],
): void {
  const [name, tag] = splitRepoTag(repoTag);
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{
      mediaType: OCI_MANIFEST,
      ...manifest,
      annotations: { 'io.containerd.image.name': fullName(name, tag), 'org.opencontainers.image.ref.name': tag },
    }],
  };
  const blobPath = (d: string) => `blobs/sha256/${d.slice('sha256:'.length)}`;
  const legacy = [{ Config: blobPath(configDigest), RepoTags: [repoTag], Layers: layerDigests.map(blobPath) }];
  const top = layerDigests[layerDigests.length - 1].slice('sha256:'.length);
  writeFileSync(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(out, 'index.json'), JSON.stringify(index));
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(legacy));
  writeFileSync(join(out, 'repositories'), JSON.stringify({ [name]: { [tag]: top } }));
}

function splitRepoTag(repoTag: string): [string, string] {
  const at = repoTag.lastIndexOf(':');
  if (at > repoTag.lastIndexOf('/')) return [repoTag.slice(0, at), repoTag.slice(at + 1)];
  return [repoTag, 'latest'];
}

/** Docker's normalised name, as Docker 25 writes in io.containerd.image.name. */
function fullName(name: string, tag: string): string {
  const first = name.split('/')[0];
  const hasHost = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasHost) return `${name}:${tag}`;
  return name.includes('/') ? `docker.io/${name}:${tag}` : `docker.io/library/${name}:${tag}`;
}

async function moveToBlobs(path: string, out: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const hex = hash.digest('hex');
  const size = statSync(path).size;
  renameSync(path, join(out, 'blobs', 'sha256', hex));
  return { digest: `sha256:${hex}`, size };
}
