/**
 * The cache coordinates its writers (adversarial cases C07, C08), through the real CLI and the real
 * registry: `prune` while a pull is caught mid-blob by the fault proxy keeps everything the pull needs;
 * after a killed pull, prune reclaims its temp files at once and keeps its partial download unless
 * asked; concurrent pulls of images sharing a blob all succeed and every name stays in refs.json.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBusyboxLayout, buildMultiArchLayout, pushLayout, type BuiltImage } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit, MULTIARCH_TAR, vmimg, type CliResult } from './run.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
const extras: BuiltImage[] = [];
/** Digest of the busybox base layer every test image shares. */
let baseBlob: string;

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  const multi = await buildMultiArchLayout('cachewriters');
  await pushLayout(multi.ref, registry.host, 'busybox:multi', { all: true });
  await pushLayout(multi.ref, registry.host, 'busybox:v2s2', { all: true, format: 'v2s2' });
  for (const name of ['a', 'b']) {
    const image = await buildBusyboxLayout({ arch: 'amd64', tag: `x-${name}`, extraLayers: [{ files: { 'etc/x': `${name}\n` } }, { files: { [`opt/${name}`]: name } }] });
    await pushLayout(image, registry.host, `x:${name}`);
    extras.push(image);
  }
  const layers = await Promise.all([multi.images.amd64, ...extras].map(firstLayer));
  assert.equal(new Set(layers).size, 1, `the test images share their base layer: ${layers.join(' ')}`);
  baseBlob = layers[0]!;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

async function firstLayer(image: BuiltImage): Promise<string> {
  const manifest = JSON.parse(await readFile(join(image.layout, 'blobs', 'sha256', image.manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers[0]!.digest;
}

/** Starts `vmimg pull` through the proxy with the base blob held after 64 KiB; resolves once it is held. */
async function heldPull(cache: string, ref: string): Promise<{ child: ChildProcess; done: Promise<CliResult>; release: () => void }> {
  let release!: () => void;
  let reached!: () => void;
  const held = new Promise<void>((r) => (reached = r));
  proxy.add({ method: 'GET', path: baseBlob, times: 1, fault: { kind: 'hold', afterBytes: 65_536, reached, release: new Promise((r) => (release = r)) } });
  let child!: ChildProcess;
  const done = vmimg(['--cache-dir', cache, 'pull', `${proxy.host}/${ref}`, '--json'], { onSpawn: (c) => (child = c) });
  const exited = done.then((r) => {
    throw new Error(`the pull ended before its blob was held (exit ${r.code}): ${r.stderr}`);
  });
  await Promise.race([held, exited]);
  return { child, done, release };
}

/** Waits until `count` flattened layers are in the cache (the pull's other layers), or the pull exits. */
async function layersDone(cache: string, count: number, pull: ChildProcess): Promise<void> {
  for (;;) {
    const idx = (await readdir(join(cache, 'layers', 'sha256')).catch(() => [])).filter((n) => n.endsWith('.idx'));
    if (idx.length >= count) return;
    assert.equal(pull.exitCode, null, 'the pull is still running');
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface PruneJson {
  removedLayers: number;
  removedLeftovers: number;
  bytesFreed: number;
  kept: { linked: { files: number }; inUse: { files: number; owners: number[] }; partials: { files: number; bytes: number } };
}

describe('prune and running pulls (C08)', () => {
  it('a prune during a pull keeps what the pull needs and frees the rest; the pull succeeds', async () => {
    const cache = await tmpDir('vmimg-cache-writers-');
    const loaded = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'arm64', '--json', '-q'])).stdout) as { id: string; layers: number };
    const removed = await expectExit(0, ['--cache-dir', cache, 'rm', loaded.id, '-q']);
    assert.equal(removed.stdout + removed.stderr, '', '-q: rm prints nothing');
    const pull = await heldPull(cache, 'x:a');
    await layersDone(cache, loaded.layers + 2, pull.child); // the removed image's layers and the pull's two small ones
    try {
      const r = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'prune', '--json'])).stdout) as PruneJson;
      assert.equal(r.removedLayers, loaded.layers, 'the removed image’s layers are freed');
      assert.deepEqual(r.kept.inUse.owners, [pull.child.pid], 'the running pull holds a lease');
      assert.ok(r.kept.inUse.files >= 5, `the pull's layers (2 × 2 files) and its partial download are kept: ${JSON.stringify(r)}`);
      const human = await expectExit(0, ['--cache-dir', cache, 'prune']);
      assert.match(human.stdout, new RegExp(`in use by a running vmimg pull, load or serve \\(pid ${pull.child.pid}\\)`));
    } finally {
      pull.release();
    }
    const result = await pull.done;
    assert.equal(result.code, 0, `the pull failed: ${result.stderr}`);
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', `${proxy.host}/x:a`, '/etc/x'])).stdout, 'a\n');
    const after = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'prune', '--json'])).stdout) as PruneJson;
    assert.equal(after.removedLayers, 0);
    assert.deepEqual(after.kept.inUse.owners, []);
    const quiet = await expectExit(0, ['--cache-dir', cache, 'prune', '-q']);
    assert.equal(quiet.stdout + quiet.stderr, '', '-q: prune prints nothing');
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', `${proxy.host}/x:a`, '/opt/a'])).stdout, 'a');
  });

  it('right after a killed pull, prune reclaims its temp files and keeps its partial download unless asked', async () => {
    const cache = await tmpDir('vmimg-cache-writers-');
    const pull = await heldPull(cache, 'x:b');
    const partial = join(cache, 'partial', baseBlob.slice(7));
    // the conversion opens its temp files beside the download, not before it: wait for both
    const temps = async () => (await readdir(join(cache, 'layers', 'sha256')).catch(() => [] as string[])).filter((n) => n.startsWith('.tmp-'));
    while (((await stat(partial).catch(() => undefined))?.size ?? 0) < 65_536 || (await temps()).length === 0) {
      assert.equal(pull.child.exitCode, null, 'the pull is still running');
      await new Promise((r) => setTimeout(r, 20));
    }
    pull.child.kill('SIGKILL');
    pull.release();
    assert.equal((await pull.done).signal, 'SIGKILL');
    const tempBefore = (await readdir(join(cache, 'layers', 'sha256'))).filter((n) => n.startsWith('.tmp-'));
    assert.ok(tempBefore.length > 0, 'the killed pull left the base layer’s conversion temp files');
    const r = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'prune', '--json'])).stdout) as PruneJson;
    assert.ok(r.removedLeftovers >= tempBefore.length, JSON.stringify(r));
    assert.deepEqual(r.kept.inUse.owners, [], 'a dead pull holds nothing');
    assert.ok(r.kept.partials.files >= 1, 'the held base blob (and any layer still downloading) is kept for a resume');
    assert.ok(r.kept.partials.bytes >= 65_536);
    assert.deepEqual((await readdir(join(cache, 'layers', 'sha256'))).filter((n) => n.startsWith('.tmp-')), []);
    const human = await expectExit(0, ['--cache-dir', cache, 'prune']);
    assert.match(human.stdout, /partial downloads? of interrupted pulls: rerunning the pull resumes from them; vmimg prune --partials deletes them/);
    const dropped = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'prune', '--partials', '--json'])).stdout) as PruneJson;
    assert.equal(dropped.kept.partials.files, 0);
    assert.ok(dropped.bytesFreed >= 65_536);
    assert.deepEqual((await readdir(join(cache, 'partial'))).filter((n) => /^[0-9a-f]{64}$/.test(n)), []);
  });
});

describe('concurrent pulls sharing a blob (C07)', () => {
  // One round: the crash's class has a deterministic test (test/image/prepare-streams.test.ts), the
  // refs.json lock one too (test/image/refs.test.ts); this is the whole path, as C07 ran it.
  it('four pulls into one cache all succeed and every name is kept', async () => {
    const refs = ['busybox:multi', 'busybox:v2s2', 'x:a', 'x:b'].map((r) => `${registry.host}/${r}`);
    for (let round = 0; round < 1; round++) {
      const cache = await tmpDir('vmimg-cache-writers-');
      const results = await Promise.all(refs.map((ref) => vmimg(['--cache-dir', cache, 'pull', ref, '--arch', 'amd64', '-q'])));
      results.forEach((r, i) => assert.equal(r.code, 0, `round ${round}: pull ${refs[i]} failed: ${r.stderr}`));
      for (const r of results) assert.doesNotMatch(r.stderr, /Unhandled|\n\s+at /, 'no crash, no stack trace');
      const images = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'images', '--json'])).stdout) as { names: string[] }[];
      assert.deepEqual(images.flatMap((i) => i.names).sort(), [...refs].sort(), `round ${round}: every name is in refs.json`);
    }
  });
});
