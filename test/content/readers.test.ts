/**
 * One contract, run against every BlobReader (containerd runs one suite against every content store):
 * the same busybox image (umoci) served by the real registry, written by skopeo as an OCI layout
 * directory, an OCI archive and a classic `docker save`, assembled as a Docker 25+ save, and kept in
 * the local store after a pull (opened as a cached image and by digest). Every reader walks to the
 * same config and layers; small reads are capped and checked; ranges are the bytes of the whole blob;
 * a missing blob is ERR_NOT_FOUND.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CacheLayout, ErrorCode, RegistryClient, isVmimgError, loadFromTar, openSourceReader, parsePlatform, parseReference, pull } from '../../src/index.js';
import {
  DockerSaveReader,
  RegistryBlobReader,
  StoreBlobReader,
  SYNTHESIZED_ANNOTATION,
  chooseImage,
  type BlobReader,
} from '../../src/content/index.js';
import { openArchiveReader } from '../../src/image/archive.js';
import { BlobStore } from '../../src/store/index.js';
import { buildBusyboxLayout, buildDockerSaveV25, pushLayout, toDockerArchive, toOciArchive, type BuiltImage } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

const AMD64 = parsePlatform('linux/amd64');

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

let image: BuiltImage;
let registry: RunningRegistry;
let client: RegistryClient;
let work: string;
let cacheDir: string;
const readers: Record<string, () => Promise<BlobReader>> = {};
/** The manifest digest each source should walk to (a Docker 25+ save carries its own OCI manifest). */
const expected: Record<string, string> = {};

before(async () => {
  requireTools(['skopeo', 'umoci', 'tar', 'gzip']);
  image = await buildBusyboxLayout({ arch: 'amd64', tag: 'contract', extraLayers: [{ files: { 'etc/which': 'contract\n' } }] });
  work = await tmpDir('vmimg-readers-');
  registry = await startRegistry();
  client = new RegistryClient();
  await pushLayout(image, registry.host, 'contract/busybox:1');
  const layout = join(work, 'layout');
  await run('skopeo', ['copy', '--quiet', `oci:${image.ref}`, `oci:${layout}:v1`]);
  const ociTar = await toOciArchive(image, join(work, 'oci.tar'), 'v1');
  const classic = await toDockerArchive(image, join(work, 'classic.tar'), 'contract/busybox:1');
  const v25 = await buildDockerSaveV25({ source: image, repoTag: 'contract/busybox:1', file: join(work, 'v25.tar') });
  cacheDir = await tmpDir('vmimg-readers-cache-');
  // A pull keeps layer blobs and the manifest in the store (local sources keep only the manifests).
  const pulled = await pull(`${registry.host}/contract/busybox:1`, { cacheDir, platform: AMD64 });
  readers.registry = async () => new RegistryBlobReader(client, parseReference(`${registry.host}/contract/busybox:1`));
  readers['oci layout dir'] = () => openSourceReader({ kind: 'layout', dir: layout });
  readers['oci archive'] = () => openSourceReader({ kind: 'tar', path: ociTar });
  readers['docker save, classic'] = () => openArchiveReader(classic);
  readers['docker save, Docker 25+'] = () => openArchiveReader(v25.file);
  readers.store = () => openSourceReader({ kind: 'cached', image: pulled, cache: new CacheLayout(cacheDir) });
  // A load keeps the manifest and config; the layers come from the tar it was loaded from.
  const loadCache = await tmpDir('vmimg-readers-load-');
  const loaded = await loadFromTar(v25.file, { cacheDir: loadCache, platform: AMD64 });
  readers['cached, loaded from a Docker 25+ save'] = () => openSourceReader({ kind: 'cached', image: loaded, cache: new CacheLayout(loadCache) });
  expected['cached, loaded from a Docker 25+ save'] = v25.manifestDigest;
  readers['store, by digest'] = () => StoreBlobReader.forDigests(new BlobStore(cacheDir), [{ digest: pulled.config.source.manifestDigest!, names: [] }]);
  for (const kind of ['registry', 'oci layout dir', 'oci archive', 'store', 'store, by digest']) expected[kind] = image.manifestDigest;
  expected['docker save, Docker 25+'] = v25.manifestDigest;
});

after(async () => {
  await client?.close();
  await registry?.stop();
});

describe('every BlobReader keeps one contract', () => {
  const kinds = ['registry', 'oci layout dir', 'oci archive', 'docker save, classic', 'docker save, Docker 25+', 'store', 'store, by digest', 'cached, loaded from a Docker 25+ save'];
  for (const kind of kinds) {
    it(`${kind}: walks to the image, reads capped and checked, opens ranges, misses are ERR_NOT_FOUND`, async () => {
      const reader = await readers[kind]!();
      try {
        const walked = await chooseImage(reader, { platform: AMD64 });
        const synthesized = walked.entry.root.descriptor.annotations?.[SYNTHESIZED_ANNOTATION] !== undefined;
        assert.equal(synthesized, kind === 'docker save, classic', 'only a classic save has its manifest built');
        if (!synthesized) assert.equal(walked.manifest.descriptor.digest, expected[kind], 'the digest is the image’s own');
        assert.equal(createHash('sha256').update(walked.manifest.bytes).digest('hex'), walked.manifest.descriptor.digest.slice(7));
        const diffIds = walked.config.parsed.rootfs.diff_ids;
        assert.equal(walked.manifest.parsed.layers.length, diffIds.length);
        assert.equal(walked.config.parsed.architecture, 'amd64');

        const config = walked.config.descriptor;
        assert.deepEqual(await reader.readBytes(config, config.size), walked.config.bytes);
        await assert.rejects(reader.readBytes(config, config.size - 1), { code: ErrorCode.TOO_LARGE });
        const missing = { mediaType: 'application/octet-stream', digest: `sha256:${'0'.repeat(64)}`, size: 10 };
        await assert.rejects(reader.readBytes(missing, 100), (err: unknown) => isVmimgError(err, ErrorCode.NOT_FOUND));
        await assert.rejects(async () => collect(await reader.open(missing)), { code: ErrorCode.NOT_FOUND });

        const layer = walked.manifest.parsed.layers.at(-1)!;
        const whole = await collect(await reader.open(layer));
        assert.equal(whole.length, layer.size);
        assert.equal(`sha256:${createHash('sha256').update(whole).digest('hex')}`, layer.digest);
        assert.deepEqual(await collect(await reader.open(layer, { offset: 10, length: 100 })), whole.subarray(10, 110));
        assert.deepEqual(await collect(await reader.open(layer, { offset: layer.size - 7 })), whole.subarray(layer.size - 7));
        if (synthesized) assert.deepEqual(walked.manifest.parsed.layers.map((l) => l.digest), diffIds, 'an uncompressed tar’s digest is its diff_id');
      } finally {
        await reader.close();
      }
    });
  }

  it('docker save, classic, with a gzip-compressed layer member: the built manifest names the member’s own digest', async () => {
    const dir = join(work, 'gz');
    await run('mkdir', ['-p', dir]);
    await run('tar', ['-xf', join(work, 'classic.tar'), '-C', dir]);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    const member = manifest[0]!.Layers.at(-1)!;
    await run('gzip', ['-n', join(dir, member)]);
    manifest[0]!.Layers[manifest[0]!.Layers.length - 1] = `${member}.gz`;
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    const file = join(work, 'classic-gz.tar');
    await run('tar', ['-cf', file, '-C', dir, '.']);
    const reader = await openArchiveReader(file);
    assert.ok(reader instanceof DockerSaveReader);
    const walked = await chooseImage(reader, { platform: AMD64 });
    const gz = readFileSync(join(dir, `${member}.gz`));
    const last = walked.manifest.parsed.layers.at(-1)!;
    assert.equal(last.digest, `sha256:${createHash('sha256').update(gz).digest('hex')}`);
    assert.equal(last.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    assert.deepEqual(await collect(await reader.open(last)), gz);
  });
});
