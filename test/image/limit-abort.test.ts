/**
 * A limit refusal is final (attack re-run: flattener limit errors waited for the download's verdict, so
 * a limit hit early in a large slow layer was reported only when the download ended). The layer (python3
 * tarfile: 5 000 empty files, then 2 MiB of random bytes; layered by umoci) is served by the real
 * registry behind the fault proxy, which holds the blob after its first 256 KiB until the test ends:
 * the pull must fail with ERR_TOO_LARGE naming the limit while the download is still held, and leave
 * nothing in the cache.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isVmimgError, parsePlatform, pull } from '../../src/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let release: () => void = () => undefined;

before(async () => {
  requireTools(['python3', 'umoci', 'skopeo']);
  const work = await tmpDir('vmimg-limit-abort-');
  const layer = join(work, 'many.tar');
  await run('python3', ['-c', `
import io, os, sys, tarfile
with tarfile.open(sys.argv[1], 'w') as t:
    for i in range(5000):
        t.addfile(tarfile.TarInfo(f'many/f{i}'))
    data = os.urandom(2 << 20)
    f = tarfile.TarInfo('many/random'); f.size = len(data); t.addfile(f, io.BytesIO(data))
`, layer]);
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'many', extraLayers: [{ rawTar: layer }] });
  registry = await startRegistry();
  await pushLayout(image.ref, registry.host, 'limits:many');
  const manifest = JSON.parse(await readFile(join(image.layout, 'blobs', 'sha256', image.manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] };
  const big = manifest.layers.at(-1)!;
  assert.ok(big.size > 1 << 20, 'the held layer is large');
  proxy = await startFaultProxy(registry.url);
  const held = new Promise<void>((resolve) => (release = resolve));
  proxy.add({ method: 'GET', path: new RegExp(`/blobs/${big.digest}$`), fault: { kind: 'hold', afterBytes: 256 * 1024, release: held } });
});

after(async () => {
  release();
  await proxy?.stop();
  await registry?.stop();
});

test('a layer over maxLayerEntries fails at once, while its download is still held', { timeout: 120_000 }, async () => {
  const cacheDir = await tmpDir('vmimg-limit-abort-cache-');
  await assert.rejects(
    // no idle timeout or throughput cut within the test's timeout: a refusal that waits for the held
    // download to end times the test out instead of passing ~30 s late (as it once did)
    pull(`${proxy.host}/limits:many`, { platform: parsePlatform('amd64'), cacheDir, limits: { maxLayerEntries: 1000 }, idleTimeoutMs: 600_000, throughput: { minBytesPerSecond: 0 } }),
    (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_TOO_LARGE'), String(err));
      assert.match(err.message, /maxLayerEntries|entries/);
      return true;
    },
  );
  assert.deepEqual(await readdir(join(cacheDir, 'images')).catch(() => []), [], 'no image');
  const layers = await readdir(join(cacheDir, 'layers', 'sha256')).catch(() => [] as string[]);
  assert.deepEqual(layers.filter((n) => n.startsWith('.tmp-')), [], 'no temp layer files');
});
