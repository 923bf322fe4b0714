/**
 * `vmimg serve` with its cache on a full disk (a 3 MiB tmpfs): a miss is answered at once with 507 and
 * the spec's error body naming ENOSPC, the access log line carries ERR_IO and ENOSPC, nothing is
 * retried, and nothing partial stays in the cache (no partial file, lock or guard), so the next miss
 * that fits is served. Breaker4 F13: each miss answered 500 UNKNOWN after ~30 s. A blob larger than
 * the free space is refused before its first upstream byte (size from the manifest, or from the
 * upstream's answer); one that runs out of space mid-way (a filler file written while the upstream is
 * held) cuts its client and leaves nothing. A manifest is answered before its commit: on a full disk
 * it is served all the same, with a warning, and fetched again next time; the tag table's failed save
 * is a warning too, and leaves no temporary file. Needs root (mount -t tmpfs).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, type AccessRecord, type RunningServe } from '../../src/serve/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { body, request } from '../helpers/http.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let mnt: string;
let mounted = false;
let layers: { digest: string; size: number }[];
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  registry = await startRegistry();
  // the base layer (~1 MB) fits on the 3 MiB disk; 4 MiB of random bytes cannot
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-full', extraLayers: [{ files: { 'random.bin': randomBytes(4 << 20) } }] });
  const digest = await pushLayout(image.ref, registry.host, 'lib/full:1');
  layers = (JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] }).layers;
  proxy = await startFaultProxy(registry.url);
  mnt = join(await tmpDir('vmimg-serve-full-'), 'small-disk');
  mkdirSync(mnt);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]).catch((err: Error) => {
    throw new Error(`mounting a 3 MiB tmpfs needs root (run the tests as root, as .ci/run does): ${err.message}`);
  });
  mounted = true;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (mounted) await run('umount', ['--lazy', mnt]); // a file serve just closed may still be busy: detach now, freed when closed
});

/** A serve on a fresh cache on the small disk; its access records. */
async function serveOnSmallDisk(): Promise<{ serve: RunningServe; cache: string; log: AccessRecord[]; warnings: string[] }> {
  const cache = join(mnt, 'cache');
  rmSync(cache, { recursive: true, force: true });
  proxy.clear();
  const log: AccessRecord[] = [];
  const warnings: string[] = [];
  const serve = await startServe({ cacheDir: cache, listen: '127.0.0.1:0', upstream: proxy.url, shutdownGraceMs: 0, prefetch: 0, onAccess: (r) => log.push(r), onWarning: (m) => warnings.push(m) });
  return { serve, cache, log, warnings };
}

/** The files under `partial/`: none once a failed download is cleaned up (the lease and lock dirs aside). */
const partials = (cache: string) => (existsSync(join(cache, 'partial')) ? readdirSync(join(cache, 'partial')) : []);
const gets = (digest: string) => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).length;

/** The 507 answer's spec error and the access log's line for it. */
async function assertRefused(res: Awaited<ReturnType<typeof request>>, log: AccessRecord[], digest: string): Promise<void> {
  assert.equal(res.statusCode, 507);
  const err = (JSON.parse((await body(res)).toString()) as { errors: { code: string; message: string; detail: { errno: string; vmimg: string } }[] }).errors[0]!;
  assert.equal(err.code, 'UNAVAILABLE');
  assert.equal(err.detail.errno, 'ENOSPC');
  assert.equal(err.detail.vmimg, 'ERR_IO');
  assert.match(err.message, /ENOSPC \(the disk holding the cache is full\)/);
  await new Promise((r) => setImmediate(r));
  const line = log.find((l) => l.path.endsWith(digest));
  assert.deepEqual([line?.status, line?.code, line?.errno], [507, 'ERR_IO', 'ENOSPC'], JSON.stringify(log));
}

describe('serve: a full cache disk', () => {
  it('a blob larger than the free space is 507 ENOSPC at once, before any upstream byte (size from the manifest); a blob that fits is then served', async () => {
    const { serve, cache, log } = await serveOnSmallDisk();
    try {
      await body(await request(`${serve.url}/v2/lib/full/manifests/1`, { accept: 'application/vnd.oci.image.manifest.v1+json' }));
      const big = layers[1]!;
      await assertRefused(await request(`${serve.url}/v2/lib/full/blobs/${big.digest}`), log, big.digest);
      assert.equal(gets(big.digest), 0, 'refused before asking the upstream');
      assert.deepEqual(partials(cache), []);
      const fits = await request(`${serve.url}/v2/lib/full/blobs/${layers[0]!.digest}`);
      assert.equal(sha(await body(fits)), layers[0]!.digest);
    } finally {
      await serve.shutdown();
    }
  });

  it('without a manifest first, the upstream answer\'s length refuses it before a byte is stored', async () => {
    const { serve, cache, log } = await serveOnSmallDisk();
    try {
      const big = layers[1]!;
      await assertRefused(await request(`${serve.url}/v2/lib/full/blobs/${big.digest}`), log, big.digest);
      assert.equal(gets(big.digest), 1, 'one GET, not retried');
      assert.deepEqual(partials(cache), []);
    } finally {
      await serve.shutdown();
    }
  });

  it('a disk filling up mid-download cuts the client, logs ENOSPC and leaves nothing; with space again the blob is served', async () => {
    const { serve, cache, log } = await serveOnSmallDisk();
    const filler = join(mnt, 'filler');
    try {
      const blob = layers[0]!;
      let release!: () => void;
      proxy.add({ method: 'GET', path: `/blobs/${blob.digest}`, fault: { kind: 'hold', afterBytes: 100_000, release: new Promise((r) => (release = r)) }, times: 1 });
      const res = await request(`${serve.url}/v2/lib/full/blobs/${blob.digest}`);
      assert.equal(res.statusCode, 200, 'headers went out when the upstream answered');
      const st = statfsSync(mnt);
      writeFileSync(filler, Buffer.alloc(Number(st.bavail * st.bsize) - 64 * 1024)); // leaves less than the rest of the blob
      release();
      await assert.rejects(body(res), 'the client is cut, never given a clean short end');
      await serve.idle();
      const line = log.find((l) => l.path.endsWith(blob.digest));
      assert.deepEqual([line?.status, line?.code, line?.errno], [499, 'ERR_IO', 'ENOSPC'], JSON.stringify(log));
      assert.deepEqual(partials(cache), [], 'no partial file, lock or guard left');
      assert.equal(gets(blob.digest), 1, 'not retried');
      rmSync(filler);
      assert.equal(sha(await body(await request(`${serve.url}/v2/lib/full/blobs/${blob.digest}`))), blob.digest);
    } finally {
      rmSync(filler, { force: true });
      await serve.shutdown();
    }
  });

  it('a manifest that cannot be stored is served all the same (it is verified), with one warning, and fetched again when next asked', async () => {
    const { serve, cache, warnings } = await serveOnSmallDisk();
    const filler = join(mnt, 'filler');
    try {
      const st = statfsSync(mnt);
      writeFileSync(filler, Buffer.alloc(Number(st.bavail * st.bsize))); // not a block left
      const manifests = () => proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/manifests/')).length;
      const ask = () => request(`${serve.url}/v2/lib/full/manifests/1`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
      const first = await ask();
      assert.equal(first.statusCode, 200);
      const bytes = await body(first);
      assert.equal(sha(bytes), first.headers['docker-content-digest']);
      await serve.idle(); // the commit and the tag table's save have ended
      assert.equal(warnings.length, 2, warnings.join('\n'));
      assert.match(warnings.find((w) => w.startsWith('manifest')) ?? '', /^manifest sha256:[0-9a-f]{64} of lib\/full was served but not stored: .*(ENOSPC|full)/);
      assert.match(warnings.find((w) => w.startsWith('the tag table')) ?? '', /^the tag table was not saved to .*tags\.json .*ENOSPC/);
      assert.deepEqual(readdirSync(join(cache, 'serve')).filter((n) => n.includes('.tmp-')), [], 'no temporary tag file stays');
      assert.match(await body(await request(`${serve.url}/metrics`)).then(String), /^vmimg_serve_warnings_total 2$/m);
      assert.equal(existsSync(join(cache, 'blobs', 'sha256', sha(bytes).slice(7))), false);
      rmSync(filler);
      const again = await ask();
      assert.equal(again.statusCode, 200);
      assert.deepEqual(await body(again), bytes);
      await serve.idle();
      assert.equal(manifests(), 2, 'not stored, so asked of the upstream again');
      assert.equal(existsSync(join(cache, 'blobs', 'sha256', sha(bytes).slice(7))), true, 'stored once there was room');
      assert.equal(warnings.length, 2);
    } finally {
      rmSync(filler, { force: true });
      await serve.shutdown();
    }
  });
});
