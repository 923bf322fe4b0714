/**
 * Ctrl-C: SIGINT during a download (the registry stalls mid-blob behind a fault proxy) aborts through
 * the AbortSignal, exits 130, and leaves a cache that lists, prunes and pulls normally afterwards.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit, vmimg } from './run.js';

let registry: RunningRegistry;
let proxy: FaultProxy;

before(async () => {
  registry = await startRegistry();
  const multi = await buildMultiArchLayout('cliint');
  await pushLayout(multi.ref, registry.host, 'busybox:int', { all: true });
  proxy = await startFaultProxy(registry.url);
  // Layer blobs (~1 MB) stall after 64 KiB; configs and manifests are small and pass.
  proxy.add({ method: 'GET', path: '/blobs/', fault: { kind: 'stall', afterBytes: 65536 } });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('Ctrl-C', () => {
  it('aborts a stalled pull with exit 130 and a consistent cache', async () => {
    const cache = await tmpDir('vmimg-cli-int-');
    let sent = false;
    const r = await vmimg(['--cache-dir', cache, 'pull', `${proxy.host}/busybox:int`, '--arch', 'amd64'], {
      onSpawn: (child) => {
        child.stderr!.on('data', (b: Buffer) => {
          if (!sent && /: downloading/.test(b.toString())) {
            sent = true;
            child.kill('SIGINT');
          }
        });
      },
    });
    assert.ok(sent, `never saw a download start: ${r.stderr}`);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

    // Nothing half-made looks like an image; the cache works as before.
    const images = join(cache, 'images');
    for (const d of existsSync(images) ? readdirSync(images) : []) {
      assert.ok(!existsSync(join(images, d, 'config.json')), `no completed image dir ${d}`);
    }
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'images', '--json'])).stdout.trim(), '[]');
    await expectExit(0, ['--cache-dir', cache, 'prune']);
    const ok = await expectExit(0, ['--cache-dir', cache, 'pull', `${registry.host}/busybox:int`, '--arch', 'amd64']);
    assert.match(ok.stdout, /^platform: +linux\/amd64$/m);
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', `${registry.host}/busybox:int`, '/etc/arch'])).stdout.trim(), 'amd64');
  });
});
