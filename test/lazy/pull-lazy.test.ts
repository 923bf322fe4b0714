// `pull --lazy` against the real registry (docker-registry on loopback) through the fault proxy, which
// counts requests: images are pushed by skopeo (the Debian test image made by umoci, and the rich image
// with devices, hardlinks, xattrs, odd names and a 33 MiB file), pulled whole into one cache, their lazy
// index published with `vmimg index push` (the sha256-<hex> fallback tag: 2.8.2 has no referrers API),
// then pulled lazily into a second cache: no layer blob is fetched by the pull, and every file read
// through the lazy readers equals the eager flatten.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pull } from '../../src/image/pull.js';
import { openLazyImage } from '../../src/lazy/open-image.js';
import { publishIndex, type PublishResult } from '../../src/lazy/publish.js';
import { parseReference } from '../../src/reference/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { debianArchive } from '../boot/debian-fixture.js';
import { testKernel } from '../boot/kernels.js';
import { expectExit } from '../cli/run.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import { buildRichImage } from '../helpers/layers.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let eagerCache: string;
const images: Record<string, { ref: string; viaProxy: string }> = {};

before(async () => {
  requireTools(['skopeo', 'umoci']);
  const [archive, rich, reg] = await Promise.all([debianArchive('amd64'), buildRichImage(), startRegistry()]);
  registry = reg;
  proxy = await startFaultProxy(registry.url);
  const sources: Record<string, string> = { debian: `oci-archive:${archive}:latest`, rich: `oci:${rich.image.layout}:rich` };
  eagerCache = await tmpDir('vmimg-lazy-eager-');
  for (const [name, src] of Object.entries(sources)) {
    const ref = `${registry.host}/lazy/${name}:1`;
    images[name] = { ref, viaProxy: `${proxy.host}/lazy/${name}:1` };
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', src, `docker://${ref}`]);
    await expectExit(0, ['--cache-dir', eagerCache, 'pull', '-q', '--index-build', ref]);
    await expectExit(0, ['--cache-dir', eagerCache, 'index', 'push', '-q', ref]);
  }
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

/** Every entry of the tree: type, mode, owner, size, link target, xattrs and the sha256 of its bytes. */
async function describeTree(fs: ContainerFS): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (ino: number, path: string): Promise<void> => {
    for (const e of fs.readdir(ino)) {
      const a = fs.getattr(e.ino);
      const p = `${path}/${e.name}`;
      let extra = '';
      if ((a.mode & 0o170000) === 0o100000) extra = createHash('sha256').update(await fs.read(e.ino, 0, a.size)).digest('hex');
      else if ((a.mode & 0o170000) === 0o120000) extra = fs.readlink(e.ino);
      const xattrs = fs.listxattr(e.ino).map((x) => `${x}=${fs.getxattr(e.ino, x).toString('hex')}`);
      out.set(p, [a.mode.toString(8), a.uid, a.gid, a.size, a.nlink, extra, ...xattrs].join(' '));
      if ((a.mode & 0o170000) === 0o040000) await walk(e.ino, p);
    }
  };
  await walk(fs.root(), '');
  return out;
}

/** Layer blob GETs since request `from`: how many, how many without a Range, and the bytes the ranges asked for. */
function layerGets(layerDigests: string[], from = 0): { gets: number; whole: number; bytes: number } {
  const gets = proxy.requests.slice(from).filter((r) => r.method === 'GET' && layerDigests.some((d) => r.path.endsWith(`/blobs/${d}`)));
  const bytes = gets.reduce((n, r) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    return n + (m ? Number(m[2]) - Number(m[1]) + 1 : 0);
  }, 0);
  return { gets: gets.length, whole: gets.filter((r) => r.range === undefined).length, bytes };
}

describe('pull --lazy', () => {
  for (const name of ['debian', 'rich']) {
    test(`${name}: no layer blob is fetched by the pull; every file read lazily equals the eager flatten`, async () => {
      const { ref, viaProxy } = images[name]!;
      const eager = await pull(ref, { cacheDir: eagerCache });
      const layerDigests = eager.config.layerDetails.map((l) => l.digest!);
      const cache = await tmpDir('vmimg-lazy-cache-');
      const warnings: string[] = [];
      const from = proxy.requests.length;
      const compressed = eager.config.layerDetails.reduce((n, l) => n + l.compressedSize!, 0);
      const image = await pull(viaProxy, { cacheDir: cache, lazy: true, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
      assert.deepEqual(warnings, []);
      // the pull itself reads /etc/passwd and /etc/group (the config's User): a span, or a small layer whole
      const byPull = layerGets(layerDigests, from);
      assert.equal(byPull.whole, 0, 'no layer blob fetched without a Range');
      assert.ok(byPull.bytes < compressed / 4, `the pull fetched ${byPull.bytes} of ${compressed} compressed bytes`);
      assert.ok(image.config.layerDetails.every((l) => l.lazy === true), 'every layer lazy');
      assert.equal(image.config.uid, eager.config.uid, 'User resolved through a lazy read of /etc/passwd');
      await assert.rejects(ContainerFS.open(image.dir), { code: 'ERR_INVALID_IMAGE' }, 'the plain opener refuses a lazy image');
      const lazy = await openLazyImage(await pull(viaProxy, { cacheDir: cache, lazy: true }));
      const [lfs, efs] = [await ContainerFS.open(lazy), await ContainerFS.open(eager)];
      try {
        const [got, want] = [await describeTree(lfs), await describeTree(efs)];
        assert.equal(got.size, want.size);
        for (const [p, d] of want) assert.equal(got.get(p), d, p);
      } finally {
        await lfs.close();
        await efs.close();
        await lazy.close();
      }
      assert.ok(layerGets(layerDigests, from).gets > byPull.gets, 'the reads fetched ranges');
      assert.ok(existsSync(join(cache, 'layers', 'sha256', `${eager.config.layers[0]!.slice(7)}.spans`)));
    });
  }

  test('the published index is looked up while the config is still coming (it needs the manifest digest only)', async () => {
    const { ref, viaProxy } = images.debian!;
    const config = (await pull(ref, { cacheDir: eagerCache })).config.source.configDigest;
    const from = proxy.requests.length;
    const asked = (): boolean => proxy.requests.slice(from).some((r) => r.path.includes('/referrers/'));
    const configGets = (): number => proxy.requests.slice(from).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${config}`)).length;
    let askedWhileHeld = false;
    // the config's body is held until the referrers request has arrived too (or 10 s: a pull that waits
    // for the config first; its client may give up on the held body and fetch it again meanwhile)
    const release = (async () => {
      for (const until = Date.now() + 10_000; Date.now() < until && !(asked() && configGets() > 0); ) await new Promise((r) => setTimeout(r, 10));
      askedWhileHeld = asked() && configGets() === 1;
    })();
    proxy.add({ method: 'GET', path: `/blobs/${config}`, times: 1, fault: { kind: 'hold', afterBytes: 1, release } });
    const image = await pull(viaProxy, { cacheDir: await tmpDir('vmimg-lazy-early-'), lazy: true });
    assert.ok(askedWhileHeld, 'the referrers request was sent before the config arrived');
    assert.ok(proxy.requests.slice(from).some((r) => r.fault === 'hold'), 'the config went through the held rule');
    assert.ok(image.config.layerDetails.every((l) => l.lazy === true), 'every layer lazy');
  });
});

describe('pull --lazy from the command line', () => {
  test('ls -R, cat and a tar export of the lazy image equal the eager ones; a later whole pull completes it', async () => {
    const { ref } = images.debian!;
    const cache = await tmpDir('vmimg-lazy-cli-');
    const pulled = await expectExit(0, ['--cache-dir', cache, 'pull', '--lazy', ref]);
    assert.match(pulled.stdout, /^lazy: +1 of 1 layers are fetched as their files are read$/m);
    const both = async (args: string[]): Promise<[string, string]> => [
      (await expectExit(0, ['--cache-dir', cache, ...args])).stdout,
      (await expectExit(0, ['--cache-dir', eagerCache, ...args])).stdout,
    ];
    for (const args of [['cat', ref, '/etc/fixture'], ['cat', ref, '/bin/sh'], ['ls', ref, '/', '-R', '-l'], ['resolve', ref, '/bin/sh']]) {
      const [lazy, eager] = await both(args);
      assert.equal(lazy, eager, args.join(' '));
    }
    const exported = async (c: string): Promise<string> => {
      const out = join(await tmpDir('vmimg-lazy-export-'), 'root.tar');
      await expectExit(0, ['--cache-dir', c, 'export', '-q', out, ref]);
      return createHash('sha256').update(readFileSync(out)).digest('hex');
    };
    assert.equal(await exported(cache), await exported(eagerCache), 'the same tar, byte for byte');
    // the counters every process added (the pull's /etc/passwd read, cat, ls, resolve, export), kept in the cache
    type Stats = { layers: { state: string; spans?: { present: number; count: number }; rangeRequests: number; rangeBytes: number; spansFetched: number; readMisses: number; readHits: number }[]; total: { rangeRequests: number; firstReadAt?: string } };
    const stats = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'stats', ref, '--json'])).stdout) as Stats;
    const [l] = stats.layers;
    assert.equal(l!.state, 'complete', 'the tar export read every file: every span is present');
    assert.ok(l!.spans!.count > 1 && l!.spans!.present === l!.spans!.count, JSON.stringify(l!.spans));
    assert.ok(l!.rangeRequests > 1 && l!.spansFetched === l!.spans!.count && l!.readMisses > 0 && l!.readHits > 0, JSON.stringify(l));
    assert.ok(stats.total.firstReadAt !== undefined);
    const human = (await expectExit(0, ['--cache-dir', cache, 'stats', ref])).stdout;
    assert.match(human, /^layer 1 [0-9a-f]{12} .*: complete, \d+ of \d+ spans present; \d+ range requests, .* spans fetched and verified, inflate \d+ ms(, \d+ spans read ahead)?; reads \d+ hits, \d+ misses/m);
    // a whole pull flattens the layer over its lazy placeholder: no .spans left, an eager image directory
    const json = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'pull', '--json', ref])).stdout) as { dir: string; lazyLayers?: number };
    assert.equal(json.lazyLayers, undefined);
    assert.deepEqual(readdirSync(join(cache, 'layers', 'sha256')).filter((n) => n.endsWith('.spans')), []);
    assert.deepEqual(readdirSync(json.dir).filter((n) => n.endsWith('.spans') || n.endsWith('.zran')), []);
    const opened = await ContainerFS.open(json.dir); // no readers needed any more
    await opened.close();
    const [lazy, eager] = await both(['ls', ref, '/', '-R', '-l']);
    assert.equal(lazy, eager);
    assert.equal((JSON.parse((await expectExit(0, ['--cache-dir', cache, 'stats', ref, '--json'])).stdout) as Stats).layers[0]!.state, 'flattened');
  });

  test('pull --lazy --fill: usable first, then every layer downloaded, verified and flattened', async () => {
    const { ref } = images.rich!;
    const cache = await tmpDir('vmimg-lazy-fill-');
    const r = await expectExit(0, ['--cache-dir', cache, 'pull', '--lazy', '--fill', ref]);
    assert.match(r.stdout, /^lazy: +\d+ of \d+ layers are fetched as their files are read\n(.|\n)*^filled: /m);
    assert.deepEqual(readdirSync(join(cache, 'layers', 'sha256')).filter((n) => n.endsWith('.spans')), []);
    const stats = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'stats', ref, '--json'])).stdout) as { layers: { state: string }[] };
    assert.ok(stats.layers.every((l) => l.state === 'flattened'), JSON.stringify(stats.layers.map((l) => l.state)));
    for (const args of [['ls', ref, '/', '-R', '-l'], ['cat', ref, '/data/fresh.txt']]) {
      const [filled, eager] = [(await expectExit(0, ['--cache-dir', cache, ...args])).stdout, (await expectExit(0, ['--cache-dir', eagerCache, ...args])).stdout];
      assert.equal(filled, eager, args.join(' '));
    }
    await expectExit(2, ['--cache-dir', cache, 'pull', '--fill', ref]);
  });

  test('pull --lazy --fill after reads fetches only the spans no read fetched: the indexed layer crosses the wire once', async () => {
    const { viaProxy } = images.debian!;
    const cache = await tmpDir('vmimg-lazy-refill-');
    const zrans = readdirSync(join(eagerCache, 'checkpoints', 'sha256')).filter((n) => n.endsWith('.zran'));
    const size = (d: string): number => statSync(join(eagerCache, 'blobs', 'sha256', d.slice(7))).size;
    const from = proxy.requests.length;
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--lazy', viaProxy]);
    // The image's indexed layers: those of the eager cache's .zran files the lazy pull's reads touched.
    const indexed = zrans.map((n) => `sha256:${n.slice(0, 64)}`).filter((d) => proxy.requests.slice(from).some((r) => r.path.endsWith(`/blobs/${d}`)));
    assert.ok(indexed.length > 0, 'the Debian image has a 10+ MiB gzip layer');
    await expectExit(0, ['--cache-dir', cache, 'cat', viaProxy, '/etc/fixture']);
    const read = layerGets(indexed, from);
    assert.ok(read.bytes > 0 && read.bytes < indexed.reduce((n, d) => n + size(d), 0) / 2 && read.whole === 0, JSON.stringify(read));
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--lazy', '--fill', viaProxy]);
    const all = layerGets(indexed, from);
    const total = indexed.reduce((n, d) => n + size(d), 0);
    assert.equal(all.whole, 0, 'no whole download of an indexed layer');
    // Spans starting mid-byte share their first byte with the span before: a few bytes over, never a second copy.
    assert.ok(all.bytes >= total && all.bytes < total + 4096, `${all.bytes} bytes fetched for ${total}`);
    assert.deepEqual(readdirSync(join(cache, 'checkpoints', 'sha256')).filter((n) => n.endsWith('.gzpart')), [], 'the kept copies went into the store');
    const stats = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'stats', viaProxy, '--json'])).stdout) as { layers: { state: string }[] };
    assert.ok(stats.layers.every((l) => l.state === 'flattened'), JSON.stringify(stats.layers.map((l) => l.state)));
    for (const path of ['/etc/fixture', '/bin/sh']) {
      assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', viaProxy, path])).stdout, (await expectExit(0, ['--cache-dir', eagerCache, 'cat', images.debian!.ref, path])).stdout, path);
    }
  });

  test('validate of a lazy image fetches and checks every file like an eager one', async () => {
    const { ref } = images.rich!;
    const cache = await tmpDir('vmimg-lazy-validate-');
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--lazy', ref]);
    type Check = { verified: boolean; layers: number; files: number; bytes: number };
    const lazy = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'validate', ref, '--json'])).stdout) as Check;
    const eager = JSON.parse((await expectExit(0, ['--cache-dir', eagerCache, 'validate', ref, '--json'])).stdout) as Check;
    assert.deepEqual({ ...lazy, dir: undefined, image: undefined }, { ...eager, dir: undefined, image: undefined });
    assert.ok(lazy.files > 10 && lazy.bytes > 30 << 20, JSON.stringify(lazy));
  });

  test('an image without a published index: a warning, then a whole pull', async () => {
    const busybox = await buildBusyboxLayout({ arch: 'amd64', tag: 'plain' });
    const ref = `${registry.host}/lazy/plain:1`;
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${busybox.layout}:plain`, `docker://${ref}`]);
    const cache = await tmpDir('vmimg-lazy-none-');
    const r = await expectExit(0, ['--cache-dir', cache, 'pull', '--lazy', ref]);
    assert.match(r.stderr, /warning: no lazy index is published for sha256:[0-9a-f]{64} \(vmimg index push publishes one\): pulling the image whole/);
    assert.doesNotMatch(r.stdout, /^lazy:/m);
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', ref, '/etc/arch'])).stdout, 'amd64\n');
  });
});

describe('pull --lazy through the referrers API', () => {
  // distribution 2.8.2 has no referrers API: the fault proxy answers GET /referrers/ in front of it
  // (first with an empty index, so `index push` sees an API, then listing the artifact it pushed).
  test('index push uses the API (no fallback tag); pull --lazy finds the artifact there', async () => {
    const ref = `${registry.host}/lazy/api:1`;
    const viaProxy = `${proxy.host}/lazy/api:1`;
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `docker://${images.debian!.ref}`, `docker://${ref}`, '--src-tls-verify=false']);
    const answer = (manifests: unknown[]): Buffer => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
    const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
    try {
      proxy.add({ method: 'GET', path: '/referrers/', fault: { kind: 'body', body: answer([]), contentType: OCI_INDEX } });
      await expectExit(0, ['--cache-dir', eagerCache, 'pull', '-q', '--index-build', viaProxy]);
      const pushed = JSON.parse((await expectExit(0, ['--cache-dir', eagerCache, 'index', 'push', '--json', viaProxy])).stdout) as { subject: string; discovery: string; artifact: Record<string, unknown> };
      assert.equal(pushed.discovery, 'referrers-api');
      const tag = pushed.subject.replace(':', '-');
      await assert.rejects(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/lazy/api:${tag}`]), /manifest unknown/, 'no fallback tag was written');
      proxy.clear();
      proxy.add({ method: 'GET', path: '/referrers/', fault: { kind: 'body', body: answer([pushed.artifact]), contentType: OCI_INDEX } });
      const from = proxy.requests.length;
      const cache = await tmpDir('vmimg-lazy-api-');
      const json = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'pull', '--lazy', '--json', viaProxy])).stdout) as { lazyLayers?: number };
      assert.equal(json.lazyLayers, 1);
      const asked = proxy.requests.slice(from).map((r) => r.path);
      assert.ok(asked.some((p) => p.includes(`/referrers/${pushed.subject}`)));
      assert.ok(!asked.some((p) => p.endsWith(`/manifests/${tag}`)), 'the fallback tag was not read');
      assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', viaProxy, '/etc/fixture'])).stdout, 'debian packages amd64\n');
    } finally {
      proxy.clear();
    }
  });
});

describe('the referrers fallback tag', () => {
  test('two pushers that read the same list: both artifacts end up listed', async () => {
    const ref = `${registry.host}/lazy/race:1`;
    const viaProxy = `${proxy.host}/lazy/race:1`;
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${images.debian!.ref}`, `docker://${ref}`]);
    const image = await pull(viaProxy, { cacheDir: eagerCache });
    const subject = image.config.source.manifestDigest!;
    const layers = image.config.layerDetails.map((l, i) => ({ digest: l.digest!, diffId: l.diffId, indexPath: image.layers[i]!.indexPath }));
    const publish = (ls: typeof layers): Promise<PublishResult> => publishIndex(parseReference(viaProxy), subject, ls, { cacheRoot: eagerCache });
    await publish(layers); // the tag exists: its reads have a body to hold
    // both pushers' first reads of the fallback tag are held until both have asked: each reads the same
    // list, so the later PUT drops the other's entry unless the pusher notices and adds it back
    let arrived = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const reached = (): void => void (++arrived === 2 && release());
    proxy.add({ method: 'GET', path: /\/manifests\/sha256-/, times: 2, fault: { kind: 'hold', afterBytes: 0, reached, release: released } });
    try {
      const pushed = await Promise.all([publish(layers), publish([])]); // two different artifacts
      assert.equal(arrived, 2, 'both pushers read the list while the other was reading it');
      const listed = JSON.parse(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref.replace(':1', `:${subject.replace(':', '-')}`)}`])) as { manifests: { digest: string }[] };
      for (const p of pushed) assert.ok(listed.manifests.some((m) => m.digest === p.artifact.digest), `${p.artifact.digest} listed`);
    } finally {
      proxy.clear();
    }
  });
});

describe('booting a lazy image', () => {
  test('vmimg boot of the lazily pulled Debian image runs its cmd as app under QEMU (amd64, initramfs)', async () => {
    requireTools(['qemu-system-x86_64']);
    const { ref } = images.debian!;
    const cache = await tmpDir('vmimg-lazy-boot-');
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--lazy', ref]);
    const r = await expectExit(0, ['--cache-dir', cache, 'boot', ref, '--kernel', await testKernel('amd64'), '--root', 'initramfs', '-q']);
    assert.equal(r.stdout, '1000:1000 /home/app debian /bin/dash\ndebian packages amd64\n');
  });
});
