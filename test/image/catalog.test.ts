/**
 * The cache catalog and prune: prune keeps what images use, what a live writer holds (its lease, its
 * temp files, its partial downloads), keeps a dead pull's partials unless asked, and reclaims the rest.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CacheLayout, exportToDir, listImages, loadFromTar, openLease, parsePlatform, prune, removeImage } from '../../src/index.js';
import { tryLock } from '../../src/store/lock.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { tmpDir } from '../helpers/tools.js';

const MULTI = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');

/** The pid of a process that has exited (what a killed pull leaves in its temp names and locks). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('prune', () => {
  it('keeps layers in use, removes those of a removed image', async () => {
    const root = await tmpDir('vmimg-prune-');
    const cache = new CacheLayout(root);
    const arm = await loadFromTar(MULTI, { cacheDir: root, platform: parsePlatform('arm64') });
    const amd = await loadFromTar(MULTI, { cacheDir: root, platform: parsePlatform('amd64') });
    const nothing = await prune(cache);
    assert.equal(nothing.removedLayers, 0, 'every layer is in use');
    assert.equal(nothing.bytesFreed, 0);

    await removeImage(cache, amd.config.source.configDigest);
    const freed = await prune(cache);
    const armOnly = new Set(arm.config.layers);
    const amdOnly = amd.config.layers.filter((d) => !armOnly.has(d));
    assert.equal(freed.removedLayers, amdOnly.length);
    assert.ok(freed.bytesFreed > 0);
    for (const layer of arm.layers) assert.ok((await stat(layer.indexPath)).isFile(), 'the arm64 image is intact');
    assert.deepEqual((await listImages(cache)).map((i) => i.id), [arm.config.source.configDigest]);
  });

  it('reclaims a dead writer’s leftovers at once, keeps a live one’s, keeps resumable partials unless asked', async () => {
    const root = await tmpDir('vmimg-prune-');
    const cache = new CacheLayout(root);
    const dead = deadPid();
    await Promise.all([cache.partialDir, cache.tmpDir, cache.imagesDir, cache.layersDir].map((d) => mkdir(d, { recursive: true })));
    const resumable = join(cache.partialDir, 'a'.repeat(64));
    const downloading = join(cache.partialDir, 'b'.repeat(64));
    await writeFile(resumable, 'x'.repeat(1000));
    await writeFile(`${resumable}.lock`, JSON.stringify({ pid: dead, host: hostname(), token: 't', created: 0 }));
    await writeFile(downloading, 'y'.repeat(500));
    const live = await tryLock(`${downloading}.lock`, 60_000);
    assert.ok(live);
    await mkdir(join(cache.imagesDir, `.${'c'.repeat(64)}.tmp-${dead}-0a1b2c`));
    await mkdir(join(cache.imagesDir, `.${'d'.repeat(64)}.tmp-${process.pid}-0a1b2c`));
    await writeFile(join(cache.layersDir, `.tmp-${dead}-00ff.contents`), 'z'.repeat(4096));
    await writeFile(join(cache.tmpDir, `${'e'.repeat(64)}.${dead}.abcdef`), 'w'.repeat(100));
    await writeFile(join(root, `refs.json.tmp-${dead}-abcdef`), '{}');
    // a lock's break guard left by a process that exited holding it (an old one goes, a fresh one may be in use)
    const guard = join(cache.partialDir, `${'a'.repeat(64)}.lock.break`);
    await writeFile(guard, '');
    await utimes(guard, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    await writeFile(join(cache.partialDir, `${'b'.repeat(64)}.lock.break`), '');

    const first = await prune(cache);
    assert.equal(existsSync(guard), false, 'the old guard went');
    assert.ok(existsSync(join(cache.partialDir, `${'b'.repeat(64)}.lock.break`)), 'a fresh guard stays');
    await rm(join(cache.partialDir, `${'b'.repeat(64)}.lock.break`));
    assert.equal(first.removedLeftovers, 4, 'the dead writer’s image dir, layer, blob and refs temp files');
    assert.equal(first.bytesFreed, 4096 + 100 + 2);
    assert.deepEqual(first.kept.partials, { files: 1, bytes: 1000 });
    assert.equal(first.kept.inUse.files, 2, 'the live download and the live image dir');
    assert.deepEqual((await readdir(cache.imagesDir)).sort(), [`.${'d'.repeat(64)}.tmp-${process.pid}-0a1b2c`]);
    assert.deepEqual(await readdir(cache.layersDir), []);
    assert.deepEqual(await readdir(cache.tmpDir), []);

    const second = await prune(cache, { partials: true });
    assert.equal(second.removedLeftovers, 1);
    assert.equal(second.bytesFreed, 1000);
    assert.deepEqual((await readdir(cache.partialDir)).sort(), ['b'.repeat(64), `${'b'.repeat(64)}.lock`], 'the live download is untouched');
    await live.release();
  });

  it('keeps what a live lease names; once released, it is reclaimed', async () => {
    const root = await tmpDir('vmimg-prune-');
    const cache = new CacheLayout(root);
    const image = await loadFromTar(MULTI, { cacheDir: root, platform: parsePlatform('arm64') });
    await removeImage(cache, image.config.source.configDigest);
    const lease = await openLease(cache, image.config.layers);
    const kept = await prune(cache);
    assert.equal(kept.removedLayers, 0);
    assert.equal(kept.kept.inUse.files, image.config.layers.length * 2, '.idx and .contents of each leased layer');
    assert.deepEqual(kept.kept.inUse.owners, [process.pid]);
    await lease.release();
    const freed = await prune(cache);
    assert.equal(freed.removedLayers, image.config.layers.length);
    assert.deepEqual(freed.kept.inUse.owners, []);
  });

  it('says what an export outside the cache keeps alive', async () => {
    const root = await tmpDir('vmimg-prune-');
    const cache = new CacheLayout(root);
    const image = await loadFromTar(MULTI, { cacheDir: root, platform: parsePlatform('arm64') });
    await exportToDir(image, join(await tmpDir('vmimg-prune-export-'), 'out'));
    await removeImage(cache, image.config.source.configDigest);
    const r = await prune(cache);
    assert.equal(r.removedLayers, 0, 'hard-linked from the export');
    assert.equal(r.kept.linked.files, image.config.layers.length * 2);
    assert.ok(r.kept.linked.bytes > 0);
  });
});
