/**
 * serve's disk bound (src/serve/budget.ts), against Debian's docker-registry with an image of three
 * 1 MiB random layers made by umoci: past `maxCacheBytes` the least recently served blob goes (a hit
 * makes a blob recent), and the server's lease forgets it, so an evicted blob is fetched, leased and
 * stored again when next asked; a blob gone behind serve's back is counted no more, with nothing else
 * evicted for it; after a restart the files' atime or mtime orders them; blobs a cached image needs
 * (`vmimg pull` into the same cache) are never evicted, and a bound they alone pass is one warning;
 * below `minFree` on a small disk (a 4 MiB tmpfs, so root) a miss makes room before its first byte
 * instead of failing with ENOSPC.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, type RunningServe, type ServeOptions } from '../../src/serve/index.js';
import { pull } from '../../src/image/pull.js';
import { parsePlatform } from '../../src/platform/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { body, request } from '../helpers/http.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { run, tmpDir } from '../helpers/tools.js';
import { vmimg } from '../cli/run.js';
import type { ChildProcess } from 'node:child_process';

let registry: RunningRegistry;
/** The three random layers (the busybox base layer is never asked for here). */
let big: { digest: string; size: number }[];
const MiB = 1 << 20;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  registry = await startRegistry();
  const image = await buildBusyboxLayout({
    arch: 'amd64',
    tag: 'serve-budget',
    extraLayers: [0, 1, 2].map((i) => ({ files: { [`random${i}.bin`]: randomBytes(MiB) } })),
  });
  const digest = await pushLayout(image.ref, registry.host, 'lib/budget:1');
  const manifest = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] };
  big = manifest.layers.slice(1);
  assert.equal(big.length, 3);
  for (const l of big) assert.ok(l.size > MiB && l.size < MiB + 64 * 1024, `a random layer is ~1 MiB gzipped (${l.size})`);
});

after(async () => {
  await registry?.stop();
});

async function serveWith(options: Partial<ServeOptions> & { cacheDir: string }): Promise<{ serve: RunningServe; warnings: string[] }> {
  const warnings: string[] = [];
  const serve = await startServe({ listen: '127.0.0.1:0', upstream: registry.url, shutdownGraceMs: 0, prefetch: 0, onWarning: (m) => warnings.push(m), ...options });
  return { serve, warnings };
}

/** GETs a blob through serve and checks its bytes; returns the cache header. */
async function getBlob(serve: RunningServe, digest: string): Promise<string> {
  const res = await request(`${serve.url}/v2/lib/budget/blobs/${digest}`);
  assert.equal(res.statusCode, 200);
  assert.equal(sha(await body(res)), digest);
  await serve.idle(); // committed, and any eviction it started has ended
  return String(res.headers['x-vmimg-cache']);
}

const stored = (cacheDir: string, digest: string) => existsSync(join(cacheDir, 'blobs', 'sha256', digest.slice(7)));
/** Every digest the cache's leases name. */
function leased(cacheDir: string): Set<string> {
  const all = new Set<string>();
  for (const name of readdirSync(join(cacheDir, 'leases'))) {
    const lines = readFileSync(join(cacheDir, 'leases', name), 'utf8').split('\n').slice(1, -1);
    for (const line of lines) for (const d of JSON.parse(line) as string[]) all.add(d);
  }
  return all;
}
const metric = async (serve: RunningServe, name: string) =>
  Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await body(await request(`${serve.url}/metrics`))).toString())?.[1] ?? NaN);

describe('serve: the cache is bounded on disk', () => {
  it('past maxCacheBytes the least recently served blob goes and the lease forgets it; asked again, it is fetched, leased and stored again', async () => {
    const cacheDir = await tmpDir('vmimg-serve-budget-');
    // room for two of the three layers
    const { serve, warnings } = await serveWith({ cacheDir, maxCacheBytes: big[0]!.size + big[1]!.size + big[2]!.size / 2, minFree: 0 });
    try {
      const [a, b, c] = big as [(typeof big)[0], (typeof big)[0], (typeof big)[0]];
      assert.equal(await getBlob(serve, a.digest), 'miss');
      assert.equal(await getBlob(serve, b.digest), 'miss');
      assert.equal(await getBlob(serve, a.digest), 'hit'); // a is now more recent than b
      assert.equal(await getBlob(serve, c.digest), 'miss');
      assert.deepEqual([a, b, c].map((l) => stored(cacheDir, l.digest)), [true, false, true], 'b, the least recently served, went');
      assert.equal(leased(cacheDir).has(b.digest), false, 'the lease no longer keeps b');
      assert.ok(leased(cacheDir).has(a.digest) && leased(cacheDir).has(c.digest));
      assert.equal(await metric(serve, 'vmimg_serve_evicted_total'), 1);
      assert.equal(await metric(serve, 'vmimg_serve_evicted_bytes_total'), b.size);
      assert.equal(await metric(serve, 'vmimg_serve_cache_bytes'), a.size + c.size);
      // b again: a miss, leased before its bytes land, and a (now least recent) goes
      assert.equal(await getBlob(serve, b.digest), 'miss');
      assert.deepEqual([a, b, c].map((l) => stored(cacheDir, l.digest)), [false, true, true]);
      assert.ok(leased(cacheDir).has(b.digest), 'b is leased again');
      assert.deepEqual(warnings, []);
    } finally {
      await serve.shutdown();
    }
  });

  it('a blob that left the cache behind serve\'s back (a prune, a vmimg rm) is counted no more, and nothing else goes for it', async () => {
    const cacheDir = await tmpDir('vmimg-serve-budget-gone-');
    const { serve } = await serveWith({ cacheDir, maxCacheBytes: big[0]!.size + big[1]!.size + big[2]!.size / 2, minFree: 0 });
    try {
      const [a, b, c] = big as [(typeof big)[0], (typeof big)[0], (typeof big)[0]];
      await getBlob(serve, a.digest);
      await getBlob(serve, b.digest);
      rmSync(join(cacheDir, 'blobs', 'sha256', a.digest.slice(7)));
      await getBlob(serve, c.digest);
      assert.deepEqual([b, c].map((l) => stored(cacheDir, l.digest)), [true, true], 'b stays: a\'s bytes were already gone');
      assert.equal(await metric(serve, 'vmimg_serve_evicted_total'), 0);
      assert.equal(await metric(serve, 'vmimg_serve_cache_bytes'), b.size + c.size);
    } finally {
      await serve.shutdown();
    }
  });

  it('a download that fails counts nothing: a 404, and blobs of known size whose upstream fetch fails', async () => {
    const cacheDir = await tmpDir('vmimg-serve-budget-fail-');
    const { serve } = await serveWith({ cacheDir, maxCacheBytes: big[0]!.size + big[1]!.size + big[2]!.size / 2, minFree: 0 });
    try {
      const unknown = `sha256:${'0'.repeat(63)}1`;
      assert.equal((await request(`${serve.url}/v2/lib/budget/blobs/${unknown}`).then(async (r) => (await body(r), r.statusCode))), 404);
      await serve.idle();
      assert.equal(await metric(serve, 'vmimg_serve_cache_bytes'), 0, 'not NaN: a bound that compares with NaN is off');
      const m = await request(`${serve.url}/v2/lib/budget/manifests/1`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
      const manifest = await body(m);
      await serve.idle();
      // the manifest told their sizes; a repository the upstream does not have fails each fetch
      for (const l of big) assert.equal((await request(`${serve.url}/v2/lib/nothere/blobs/${l.digest}`).then(async (r) => (await body(r), r.statusCode))), 404);
      await serve.idle();
      assert.equal(await metric(serve, 'vmimg_serve_cache_bytes'), manifest.length, 'only the manifest is counted');
      assert.equal(await metric(serve, 'vmimg_serve_evicted_total'), 0);
      assert.ok(stored(cacheDir, String(m.headers['docker-content-digest'])), 'the manifest stays');
    } finally {
      await serve.shutdown();
    }
  });

  it('vmimg pull from serve into serve\'s own cache completes: serve does not wait for the partial lock the pull holds while it waits for serve', { timeout: 120_000 }, async () => {
    const cacheDir = await tmpDir('vmimg-serve-budget-self-');
    const { serve } = await serveWith({ cacheDir, minFree: 0 });
    try {
      let child: ChildProcess | undefined;
      const killer = setTimeout(() => child?.kill('SIGKILL'), 90_000); // a hang fails, it does not hold the suite
      const r = await vmimg(['pull', '--cache-dir', cacheDir, '--arch', 'amd64', `${serve.host}/lib/budget:1`], { onSpawn: (c) => (child = c) });
      clearTimeout(killer);
      assert.equal(r.code, 0, `${r.signal ?? ''} ${r.stderr}`);
      for (const l of big) assert.ok(stored(cacheDir, l.digest));
      await serve.idle();
      assert.deepEqual(readdirSync(join(cacheDir, 'tmp')).filter((n) => n.includes('.tmp-')), [], 'serve\'s own download files were renamed into place');
    } finally {
      await serve.shutdown();
    }
  });

  it('manifests go last: with the layers evicted, a known tag is still answered stale when the upstream is down', async () => {
    const relay = await startFaultProxy(registry.url);
    const cacheDir = await tmpDir('vmimg-serve-budget-manifests-');
    const { serve } = await serveWith({ cacheDir, upstream: relay.url, maxCacheBytes: big[0]!.size + big[1]!.size / 2, minFree: 0, tagTtlMs: 0 });
    try {
      const tag = `${serve.url}/v2/lib/budget/manifests/1`;
      const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
      const first = await request(tag, accept);
      const manifest = await body(first);
      const digest = String(first.headers['docker-content-digest']);
      await serve.idle();
      await getBlob(serve, big[0]!.digest);
      await getBlob(serve, big[1]!.digest); // the manifest is the least recently used, and stays
      assert.deepEqual([digest, big[0]!.digest, big[1]!.digest].map((d) => stored(cacheDir, d)), [true, false, true]);
      await relay.stop();
      const stale = await request(tag, accept);
      assert.equal(stale.statusCode, 200);
      assert.equal(stale.headers['x-vmimg-cache'], 'stale');
      assert.match(String(stale.headers.warning), /^110 /);
      assert.deepEqual(await body(stale), manifest);
    } finally {
      await serve.shutdown();
      await relay.stop().catch(() => undefined);
    }
  });

  it('a blob larger than the bound pushes nothing else out: it goes once stored, and the tag\'s manifest stays for a stale answer', async () => {
    const relay = await startFaultProxy(registry.url);
    const cacheDir = await tmpDir('vmimg-serve-budget-too-big-');
    const { serve } = await serveWith({ cacheDir, upstream: relay.url, maxCacheBytes: 64 * 1024, minFree: 0, tagTtlMs: 0 });
    try {
      const tag = `${serve.url}/v2/lib/budget/manifests/1`;
      const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
      const first = await request(tag, accept);
      const manifest = await body(first);
      const digest = String(first.headers['docker-content-digest']);
      await serve.idle();
      assert.equal(await getBlob(serve, big[0]!.digest), 'miss');
      assert.deepEqual([digest, big[0]!.digest].map((d) => stored(cacheDir, d)), [true, false], 'the layer went, the manifest stayed');
      await relay.stop();
      const stale = await request(tag, accept);
      assert.equal(stale.statusCode, 200);
      assert.equal(stale.headers['x-vmimg-cache'], 'stale');
      assert.deepEqual(await body(stale), manifest);
    } finally {
      await serve.shutdown();
      await relay.stop().catch(() => undefined);
    }
  });

  it('a known tag whose manifest went, on an upstream found down: a 503 at once, with no stale Warning and no fetch by digest', async () => {
    const relay = await startFaultProxy(registry.url);
    const cacheDir = await tmpDir('vmimg-serve-budget-gone-manifest-');
    const { serve } = await serveWith({ cacheDir, upstream: relay.url, maxCacheBytes: 1, minFree: 0, tagTtlMs: 0 });
    try {
      const tag = `${serve.url}/v2/lib/budget/manifests/1`;
      const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
      const digest = String((await request(tag, accept).then(async (r) => (await body(r), r))).headers['docker-content-digest']);
      await serve.idle();
      assert.equal(stored(cacheDir, digest), false, 'a bound of 1 byte takes the manifest too');
      relay.add({ method: 'HEAD', path: '/manifests/1', fault: { kind: 'status', status: 503 } });
      relay.add({ method: 'GET', path: '/manifests/', fault: { kind: 'status', status: 503 } });
      const res = await request(tag, accept);
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers.warning, undefined);
      assert.equal((JSON.parse((await body(res)).toString()) as { errors: { code: string }[] }).errors[0]!.code, 'UNAVAILABLE');
      assert.deepEqual(relay.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/manifests/${digest}`)).map((r) => r.path), [], 'no fetch by digest while the upstream is held down');
    } finally {
      await serve.shutdown();
      await relay.stop();
    }
  });

  it('the order survives a restart: blobs already in the cache are counted, least recently read (atime) or stored (mtime) first out', async () => {
    const cacheDir = await tmpDir('vmimg-serve-budget-restart-');
    const first = await serveWith({ cacheDir, minFree: 0 });
    try {
      for (const l of big) await getBlob(first.serve, l.digest);
    } finally {
      await first.serve.shutdown();
    }
    // the files' times, set apart (file times here move in 4 ms steps): the first stored was read a
    // second ago (atime), so the second, untouched for 4 s, is the least recently used
    const now = Date.now() / 1000;
    const times: [number, number][] = [[now - 1, now - 5], [now - 4, now - 4], [now - 2, now - 2]]; // [atime, mtime]
    big.forEach((l, i) => utimesSync(join(cacheDir, 'blobs', 'sha256', l.digest.slice(7)), ...times[i]!));
    // a bound that holds two of the three: the scan at start finds it passed
    const { serve } = await serveWith({ cacheDir, maxCacheBytes: big[0]!.size + big[1]!.size + big[2]!.size / 2, minFree: 0 });
    try {
      await serve.idle();
      assert.equal(await metric(serve, 'vmimg_serve_cache_bytes'), big[0]!.size + big[2]!.size, 'within the bound after the scan');
      assert.deepEqual(big.map((l) => stored(cacheDir, l.digest)), [true, false, true]);
    } finally {
      await serve.shutdown();
    }
  });

  it('blobs a cached image needs are never evicted: a bound they alone pass is one warning, and other blobs still go', async () => {
    const cacheDir = await tmpDir('vmimg-serve-budget-images-');
    await pull(`${registry.host}/lib/budget:1`, { cacheDir, platform: parsePlatform('amd64') });
    const { serve, warnings } = await serveWith({ cacheDir, maxCacheBytes: 1, minFree: 0 });
    try {
      await serve.idle();
      for (const l of big) assert.ok(stored(cacheDir, l.digest), 'the pulled image keeps its layers');
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /^blobs that cached images or running pulls need take \d+ bytes, over the cache's bound of 1 \(vmimg rm, then vmimg prune, frees them\)$/);
      assert.equal(await getBlob(serve, big[0]!.digest), 'hit');
      assert.equal(warnings.length, 1, 'said once');
    } finally {
      await serve.shutdown();
    }
  });

  it('a free-space floor larger than the disk is said at start: every blob would go once stored', async () => {
    const { serve, warnings } = await serveWith({ cacheDir: await tmpDir('vmimg-serve-budget-floor-'), minFree: Number.MAX_SAFE_INTEGER });
    try {
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /^the free space to keep \(\d+ bytes\) is more than the cache's disk holds \(\d+\): every blob is evicted once stored$/);
      assert.equal(serve.cacheBound.minFreeBytes, Number.MAX_SAFE_INTEGER);
    } finally {
      await serve.shutdown();
    }
  });

  it('bad bounds are refused before anything is created', async () => {
    const cacheDir = join(await tmpDir('vmimg-serve-budget-bad-'), 'cache');
    for (const bad of [{ maxCacheBytes: 0 }, { maxCacheBytes: 1.5 }, { minFree: -1 }, { minFree: '100%' as const }, { minFree: 'x%' as `${number}%` }]) {
      await assert.rejects(serveWith({ cacheDir, ...bad }), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_ARGUMENT', JSON.stringify(bad));
    }
    assert.equal(existsSync(cacheDir), false);
  });
});

describe('serve: the free-space floor on a small disk', () => {
  let mnt: string | undefined;
  before(async () => {
    const dir = join(await tmpDir('vmimg-serve-budget-disk-'), 'small-disk');
    mkdirSync(dir);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]).catch((err: Error) => {
      throw new Error(`mounting a 4 MiB tmpfs needs root (run the tests as root, as .ci/run does): ${err.message}`);
    });
    mnt = dir;
  });
  after(async () => {
    if (mnt !== undefined) await run('umount', ['--lazy', mnt]);
  });

  /** What a test on the small disk gets: a serve on a fresh cache there, its disk's free bytes, and another tenant's file leaving `bytes` free. */
  interface SmallDisk {
    serve: RunningServe;
    cacheDir: string;
    warnings: string[];
    free: () => number;
    leaveFree: (bytes: number) => void;
  }

  /** Runs `test` with a serve keeping `minFree` on the small disk; the serve and the tenant's file go after. */
  async function onSmallDisk(minFree: number, test: (d: SmallDisk) => Promise<void>): Promise<void> {
    const cacheDir = join(mnt!, 'cache');
    rmSync(cacheDir, { recursive: true, force: true });
    const { serve, warnings } = await serveWith({ cacheDir, minFree });
    const filler = join(mnt!, 'filler');
    const free = (): number => {
      const st = statfsSync(mnt!);
      return st.bavail * st.bsize;
    };
    try {
      await test({ serve, cacheDir, warnings, free, leaveFree: (bytes) => writeFileSync(filler, Buffer.alloc(free() - bytes)) });
    } finally {
      rmSync(filler, { force: true });
      await serve.shutdown();
    }
  }

  /** Waits (20 s at most) for the periodic check to evict, then for the eviction to end. */
  async function untilEvicted(serve: RunningServe): Promise<void> {
    for (const deadline = Date.now() + 20_000; (await metric(serve, 'vmimg_serve_evicted_total')) === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 200));
    await serve.idle();
  }

  it('concurrent misses reserve their bytes: two that fit only together with the floor make room for both, none cut by ENOSPC', async () => {
    await onSmallDisk(Math.round(0.3 * MiB), async ({ serve, cacheDir, warnings, leaveFree }) => {
      const [a, b, c] = big as [(typeof big)[0], (typeof big)[0], (typeof big)[0]];
      await getBlob(serve, a.digest);
      // room for one more blob and the floor, not two: each miss alone sees room, together they do not
      leaveFree(b.size + 0.3 * MiB + 0.5 * MiB);
      const answers = await Promise.all([b, c].map(async (l) => {
        const res = await request(`${serve.url}/v2/lib/budget/blobs/${l.digest}`);
        return { status: res.statusCode, digest: sha(await body(res).catch(() => Buffer.alloc(0))) };
      }));
      assert.deepEqual(answers, [b, c].map((l) => ({ status: 200, digest: l.digest })));
      await serve.idle();
      assert.deepEqual([a, b, c].map((l) => stored(cacheDir, l.digest)), [false, true, true], 'a went for them');
      assert.deepEqual(warnings, []);
    });
  });

  it('a disk others fill is noticed without a request: below the floor the least recently served blob goes within seconds', { timeout: 30_000 }, async () => {
    await onSmallDisk(MiB / 2, async ({ serve, cacheDir, warnings, free, leaveFree }) => {
      const [a, b] = big as [(typeof big)[0], (typeof big)[0]];
      await getBlob(serve, a.digest);
      await getBlob(serve, b.digest);
      leaveFree(MiB / 4); // a quarter MiB left: under the floor
      await untilEvicted(serve);
      assert.deepEqual([a, b].map((l) => stored(cacheDir, l.digest)), [false, true], 'a, the least recently served, went');
      assert.ok(free() >= MiB / 2, `the floor holds again: ${free()} bytes free`);
      assert.deepEqual(warnings, []);
    });
  });

  it('a disk others filled to the last block: the space reserve lets the eviction take its lock and rewrite its lease', { timeout: 30_000 }, async () => {
    await onSmallDisk(MiB / 2, async ({ serve, cacheDir, warnings, free, leaveFree }) => {
      const [a, b] = big as [(typeof big)[0], (typeof big)[0]];
      await getBlob(serve, a.digest);
      await getBlob(serve, b.digest);
      assert.ok(existsSync(join(cacheDir, 'serve', 'space-reserve')), 'the reserve is made at start');
      leaveFree(0);
      assert.equal(free(), 0);
      await untilEvicted(serve);
      assert.deepEqual([a, b].map((l) => stored(cacheDir, l.digest)), [false, true], 'a went');
      assert.deepEqual(warnings, []);
    });
  });

  it('a miss that would pass minFree makes room first: the least recently served blob goes, not a 507, and the floor holds', async () => {
    await onSmallDisk(MiB / 2, async ({ serve, cacheDir, warnings, free, leaveFree }) => {
      const [a, b, c] = big as [(typeof big)[0], (typeof big)[0], (typeof big)[0]];
      await getBlob(serve, a.digest);
      await getBlob(serve, b.digest);
      assert.deepEqual([a, b].map((l) => stored(cacheDir, l.digest)), [true, true]);
      // another tenant of the disk leaves 0.9 MiB free: above the floor, too little for c (~1 MiB)
      leaveFree(0.9 * MiB);
      assert.ok(free() < c.size);
      assert.equal(await getBlob(serve, c.digest), 'miss');
      assert.deepEqual([a, b, c].map((l) => stored(cacheDir, l.digest)), [false, true, true], 'a, the least recently served, went; b was enough');
      assert.ok(free() >= MiB / 2, `the floor holds: ${free()} bytes free`);
      assert.deepEqual(warnings, [], 'the floor is kept without a warning');
    });
  });
});
