// breaker5 B1: a cache holding a layer's diff_id under another compressed blob (the same tar pushed by
// skopeo once as zstd, once as gzip) must not publish an index that fails every `pull --lazy`, and a
// bad published index must never make `pull --lazy` fail: it is a warning, the next candidate (newest
// first) is tried, and a layer no candidate describes is pulled whole. CNCF registry on loopback, the
// images built by umoci (busybox helper) and recompressed by skopeo.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pull } from '../../src/image/pull.js';
import { publishIndex } from '../../src/lazy/publish.js';
import { statsPath } from '../../src/lazy/stats.js';
import { parseReference } from '../../src/reference/index.js';
import { expectExit } from '../cli/run.js';
import { buildBusyboxLayout, layoutRefString } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let zst: string;
let gz: string;
let publisher: string;

before(async () => {
  requireTools(['skopeo', 'umoci']);
  registry = await startRegistry();
  const layout = await buildBusyboxLayout({ arch: 'amd64', tag: 'poison', extraLayers: [{ files: { 'etc/poison': 'same tar, two blobs\n' } }] });
  zst = `${registry.host}/lazy/poison:zst`;
  gz = `${registry.host}/lazy/poison:gz`;
  // zstd recompressed into a local layout, then pushed with its digests preserved (skopeo otherwise
  // reuses a blob of the same diff_id it already knows, and both tags get the same layers)
  const tmp = await tmpDir('vmimg-poison-dir-');
  await run('skopeo', ['copy', '-q', '--dest-decompress', `oci:${layoutRefString(layout.ref)}`, `dir:${tmp}/d`]);
  await run('skopeo', ['copy', '-q', '--dest-compress-format', 'zstd', `dir:${tmp}/d`, `oci:${tmp}/z:zst`]);
  await run('skopeo', ['copy', '-q', '--preserve-digests', '--dest-tls-verify=false', `oci:${tmp}/z:zst`, `docker://${zst}`]);
  await run('skopeo', ['copy', '-q', '--preserve-digests', '--dest-tls-verify=false', `oci:${layoutRefString(layout.ref)}`, `docker://${gz}`]);
  publisher = await tmpDir('vmimg-poison-pub-');
  await expectExit(0, ['--cache-dir', publisher, 'pull', '-q', zst]); // the diff_ids arrive as zstd blobs first
  await expectExit(0, ['--cache-dir', publisher, 'pull', '-q', gz]);
});

after(async () => {
  await registry?.stop();
});

async function lazyPull(ref: string): Promise<{ lazy: number; warnings: string[] }> {
  const warnings: string[] = [];
  const image = await pull(ref, { cacheDir: await tmpDir('vmimg-poison-'), lazy: true, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
  return { lazy: image.config.layerDetails.filter((l) => l.lazy === true).length, warnings };
}

describe('pull --lazy: an index published from a cache that holds the layers under other blobs', () => {
  test('index push re-heads each .idx with the manifest layer digest: every layer is placed lazily', async () => {
    const layersOf = async (ref: string) => (JSON.parse(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])) as { layers: { mediaType: string; digest: string }[] }).layers;
    const [z, g] = [await layersOf(zst), await layersOf(gz)];
    assert.ok(z.every((l) => l.mediaType.endsWith('+zstd')) && g.every((l) => l.mediaType.endsWith('+gzip')), `skopeo recompressed: ${JSON.stringify([z, g])}`);
    const gzImage = await pull(gz, { cacheDir: publisher });
    assert.deepEqual(gzImage.config.layerDetails.map((l) => l.digest), g.map((l) => l.digest));
    const built = await expectExit(0, ['--cache-dir', publisher, 'index', 'build', gz]);
    assert.doesNotMatch(built.stdout, / 0 B:/, 'a missing blob is shown at its manifest size');
    assert.match(built.stdout, /VMIMG_CACHE_DIR=<empty dir> vmimg pull --index-build/);
    await expectExit(0, ['--cache-dir', publisher, 'index', 'push', '-q', gz]);
    const r = await lazyPull(gz);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.lazy, gzImage.config.layers.length);
  });

  test('a bad candidate is a warning: the next is tried, newest first, and an undescribed layer is pulled whole', async () => {
    const image = await pull(zst, { cacheDir: publisher });
    const details = image.config.layerDetails;
    const wrong = image.layers.map((l, i) => ({ digest: details[i]!.digest!, diffId: l.diffId, indexPath: image.layers[(i + 1) % image.layers.length]!.indexPath, size: details[i]!.compressedSize! }));
    const repo = parseReference(zst);
    const subject = image.config.source.manifestDigest!;
    await publishIndex(repo, subject, wrong, { cacheRoot: publisher });
    let r = await lazyPull(zst);
    assert.equal(r.lazy, 0, 'no layer is placed from an index describing other layers');
    assert.ok(r.warnings.some((w) => /does not describe it/.test(w)), r.warnings.join('\n'));
    await expectExit(0, ['--cache-dir', publisher, 'index', 'push', '-q', zst]); // a good one, newer
    r = await lazyPull(zst);
    assert.deepEqual(r.warnings, [], 'the newest (good) candidate is used first');
    assert.equal(r.lazy, details.length);
    await publishIndex(repo, subject, wrong, { cacheRoot: publisher }); // a bad one, newest
    r = await lazyPull(zst);
    assert.equal(r.lazy, details.length, 'placed from the older good candidate');
    assert.ok(r.warnings.some((w) => /does not serve it .*trying the next one for this layer/.test(w)), r.warnings.join('\n'));
  });
});

describe('prune: a removed image takes its lazy-read counters with it (breaker5 B10)', () => {
  test('rm then prune removes stats/<configHex>.json', async () => {
    const cache = await tmpDir('vmimg-poison-stats-');
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--lazy', gz]);
    await expectExit(0, ['--cache-dir', cache, 'cat', gz, '/etc/poison']);
    const image = await pull(gz, { cacheDir: cache, lazy: true });
    const stats = statsPath(cache, `sha256:${basename(image.dir)}`);
    assert.ok(existsSync(stats), 'a lazy read keeps counters');
    await expectExit(0, ['--cache-dir', cache, 'rm', gz]);
    await expectExit(0, ['--cache-dir', cache, 'prune']);
    assert.ok(!existsSync(stats), 'prune removed the counters of the removed image');
  });
});
