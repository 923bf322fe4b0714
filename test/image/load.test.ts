/**
 * loadFromTar / validateTar / exportToDir on archives written by outside tools: the shipped samples
 * (skopeo oci-archive and docker-archive), a Docker 25-style `docker save`, and broken archives.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile, copyFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import {
  ContainerFS,
  ErrorCode,
  exportToDir,
  isLocalTar,
  isVmimgError,
  loadFromDir,
  loadFromTar,
  parsePlatform,
  validateTar,
} from '../../src/index.js';
import { buildBusyboxLayout, buildDockerSaveV25 } from '../helpers/busybox.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { tmpDir } from '../helpers/tools.js';

const MULTI = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');
const DOCKER = join(REPO_ROOT, 'images', 'busybox-amd64.docker.tar');

async function imageText(dir: string, path: string): Promise<string> {
  const fs = await ContainerFS.open(dir);
  try {
    return (await fs.readFile(path)).toString('utf8');
  } finally {
    await fs.close();
  }
}

describe('loadFromTar', () => {
  for (const arch of ['amd64', 'arm64'] as const) {
    it(`loads the ${arch} image of the multi-arch OCI archive`, async () => {
      const cacheDir = await tmpDir('vmimg-load-');
      const image = await loadFromTar(MULTI, { platform: parsePlatform(arch), cacheDir });
      assert.equal(image.config.architecture, arch);
      assert.equal(image.config.source.kind, 'oci-archive');
      assert.equal((await imageText(image.dir, '/etc/arch')).trim(), arch);
      assert.deepEqual(image.config.entrypoint, ['/bin/sh']);
      // The sample's top layer whites out /etc/issue.
      await assert.rejects(imageText(image.dir, '/etc/issue'), { code: 'ENOENT' });
    });
  }

  it('loads a classic docker save archive (uncompressed layer.tar members)', async () => {
    const cacheDir = await tmpDir('vmimg-load-');
    const image = await loadFromTar(DOCKER, { cacheDir, platform: parsePlatform('amd64') });
    assert.equal(image.config.source.kind, 'docker-archive');
    assert.equal(image.config.architecture, 'amd64');
    assert.equal((await imageText(image.dir, '/etc/arch')).trim(), 'amd64');
  });

  it('loads a Docker 25+ docker save (manifest.json pointing into an OCI layout)', async () => {
    const cacheDir = await tmpDir('vmimg-load-');
    const saved = await buildDockerSaveV25({ arch: 'arm64', repoTag: 'example/busybox:25' });
    const image = await loadFromTar(saved.file, { cacheDir, platform: parsePlatform('arm64'), tag: 'example/busybox:25' });
    assert.equal(image.config.source.configDigest, saved.configDigest);
    assert.deepEqual(image.config.layers, saved.layerDigests);
    assert.equal((await imageText(image.dir, '/etc/arch')).trim(), 'arm64');
  });

  it('gives the same image id whether loaded from the OCI archive or the docker archive', async () => {
    const cacheDir = await tmpDir('vmimg-load-');
    const a = await loadFromTar(MULTI, { cacheDir, platform: parsePlatform('amd64') });
    const b = await loadFromTar(DOCKER, { cacheDir, platform: parsePlatform('amd64') });
    assert.equal(a.config.source.configDigest, b.config.source.configDigest);
    assert.equal((await readdir(join(cacheDir, 'layers', 'sha256'))).filter((f) => f.endsWith('.idx')).length, a.layers.length);
  });

  it('refuses a platform the archive does not hold, listing what it holds', async () => {
    const cacheDir = await tmpDir('vmimg-load-');
    await assert.rejects(loadFromTar(MULTI, { cacheDir, platform: parsePlatform('s390x') }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.PLATFORM_MISMATCH));
      assert.match(err.message, /linux\/amd64.*linux\/arm64\/v8|linux\/arm64\/v8.*linux\/amd64/);
      return true;
    });
    await assert.rejects(loadFromTar(DOCKER, { cacheDir, platform: parsePlatform('arm64') }), { code: ErrorCode.PLATFORM_MISMATCH });
  });

  it('says a gzip-compressed docker save must be decompressed first', async () => {
    const dir = await tmpDir('vmimg-load-');
    const gz = join(dir, 'image.tar.gz');
    await writeFile(gz, gzipSync(await readFile(DOCKER)));
    await assert.rejects(loadFromTar(gz, { cacheDir: dir }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.INVALID_ARCHIVE));
      assert.match(err.hint ?? '', /gunzip/);
      return true;
    });
  });

  it('refuses a tar that is not an image, naming what it holds', async () => {
    const dir = await tmpDir('vmimg-load-');
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'hello.txt'), 'hi\n');
    await promisify(execFile)('tar', ['-cf', join(dir, 'plain.tar'), '-C', join(dir, 'src'), 'hello.txt']);
    assert.equal(await isLocalTar(join(dir, 'plain.tar')), true);
    await assert.rejects(validateTar(join(dir, 'plain.tar')), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.INVALID_ARCHIVE));
      assert.match(err.message, /hello\.txt/);
      return true;
    });
  });

  it('fails a truncated archive with ERR_INVALID_ARCHIVE and commits no image', async () => {
    const dir = await tmpDir('vmimg-load-');
    const cut = join(dir, 'cut.tar');
    await copyFile(DOCKER, cut);
    await truncate(cut, Math.floor((await stat(cut)).size / 2));
    await assert.rejects(loadFromTar(cut, { cacheDir: dir, platform: parsePlatform('amd64') }), (err: unknown) => {
      assert.ok(isVmimgError(err));
      assert.ok([ErrorCode.INVALID_ARCHIVE, ErrorCode.INVALID_LAYER, ErrorCode.DIGEST_MISMATCH].includes(err.code as never), err.code);
      return true;
    });
    const images = await readdir(join(dir, 'images')).catch(() => []);
    assert.deepEqual(images, []);
  });
});

describe('validateTar', () => {
  it('reports both platforms of the multi-arch sample', async () => {
    const report = await validateTar(MULTI);
    assert.equal(report.format, 'oci-archive');
    assert.deepEqual(report.images.map((i) => i.platform).sort(), ['linux/amd64', 'linux/arm64']);
    for (const image of report.images) assert.equal(image.layers, 3);
  });

  it('reports the repo tag of a docker save', async () => {
    const report = await validateTar(DOCKER);
    assert.equal(report.format, 'docker-archive');
    assert.match(report.images[0]?.name ?? '', /busybox/);
  });
});

describe('exportToDir', () => {
  it('writes config.json and every layer pair, refusing a non-empty destination unless forced', async () => {
    const cacheDir = await tmpDir('vmimg-export-');
    const image = await loadFromTar(MULTI, { cacheDir, platform: parsePlatform('arm64') });
    const out = join(cacheDir, 'out');
    const exported = await exportToDir(image, out);
    const files = (await readdir(out)).sort();
    assert.equal(files.length, 1 + 2 * image.layers.length);
    assert.ok(files.includes('config.json'));
    const reloaded = await loadFromDir(out, { platform: parsePlatform('arm64') });
    assert.deepEqual(reloaded.config, image.config);
    assert.equal((await imageText(exported.dir, '/etc/arch')).trim(), 'arm64');
    await assert.rejects(exportToDir(image, out), { code: ErrorCode.DESTINATION_EXISTS });
    await exportToDir(image, out, { force: true });
    await assert.rejects(loadFromDir(out, { platform: parsePlatform('amd64') }), { code: ErrorCode.PLATFORM_MISMATCH });
  });
});

describe('multi-image archives', () => {
  it('picks an image of a multi-tag OCI archive by --tag, and asks for one when none is given', async () => {
    const dir = await tmpDir('vmimg-multi-');
    const layout = join(dir, 'layout');
    // Two images in one OCI layout (umoci), tarred as an OCI archive by GNU tar.
    await buildBusyboxLayout({ arch: 'amd64', dir: layout, tag: 'one' });
    await buildBusyboxLayout({ arch: 'arm64', dir: layout, tag: 'two', extraLayers: [{ files: { 'etc/which': 'two\n' } }] });
    const archive = join(dir, 'two-images.tar');
    await promisify(execFile)('tar', ['-C', layout, '-cf', archive, '.']);
    const cacheDir = join(dir, 'cache');
    await assert.rejects(loadFromTar(archive, { cacheDir }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.AMBIGUOUS_IMAGE));
      assert.match(err.message, /one/);
      assert.match(err.message, /two/);
      return true;
    });
    const two = await loadFromTar(archive, { cacheDir, tag: 'two' });
    assert.equal(two.config.architecture, 'arm64');
    assert.equal((await imageText(two.dir, '/etc/which')).trim(), 'two');
    const one = await loadFromTar(archive, { cacheDir, ref: 'one' });
    assert.equal(one.config.architecture, 'amd64');
    await assert.rejects(loadFromTar(archive, { cacheDir, tag: 'three' }), { code: ErrorCode.NOT_FOUND });
    const report = await validateTar(archive);
    assert.deepEqual(report.images.map((i) => i.name).sort(), ['one', 'two']);
  });
});
