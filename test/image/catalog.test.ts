/** The cache catalog: prune keeps what images use and what a running pull is writing, removes the rest. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheLayout, listImages, loadFromTar, parsePlatform, prune, removeImage } from '../../src/index.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { tmpDir } from '../helpers/tools.js';

const MULTI = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');
const HOUR_AGO = new Date(Date.now() - 3600_000);

describe('prune', () => {
  it('keeps layers in use and fresh leftovers, removes unreferenced layers and stale leftovers', async () => {
    const root = await tmpDir('vmimg-prune-');
    const cache = new CacheLayout(root);
    const arm = await loadFromTar(MULTI, { cacheDir: root, platform: parsePlatform('arm64') });
    const amd = await loadFromTar(MULTI, { cacheDir: root, platform: parsePlatform('amd64') });
    await mkdir(join(root, 'partial'), { recursive: true });
    const fresh = join(root, 'partial', 'a'.repeat(64));
    const old = join(root, 'partial', 'b'.repeat(64));
    const halfImage = join(cache.imagesDir, `.${'c'.repeat(64)}.tmp-123456`);
    await writeFile(fresh, 'in progress');
    await writeFile(old, 'abandoned');
    await mkdir(halfImage);
    await utimes(old, HOUR_AGO, HOUR_AGO);
    await utimes(halfImage, HOUR_AGO, HOUR_AGO);

    const nothing = await prune(cache);
    assert.equal(nothing.removedLayers, 0, 'every layer is in use');
    assert.deepEqual(await readdir(join(root, 'partial')), ['a'.repeat(64)]);
    assert.ok(!(await readdir(cache.imagesDir)).some((n) => n.includes('.tmp-')));

    await removeImage(cache, amd.config.source.configDigest);
    const freed = await prune(cache);
    const armOnly = new Set(arm.config.layers);
    const amdOnly = amd.config.layers.filter((d) => !armOnly.has(d));
    assert.equal(freed.removedLayers, amdOnly.length);
    assert.ok(freed.bytesFreed > 0);
    for (const layer of arm.layers) assert.ok((await stat(layer.indexPath)).isFile(), 'the arm64 image is intact');
    assert.deepEqual((await listImages(cache)).map((i) => i.id), [arm.config.source.configDigest]);
  });
});
