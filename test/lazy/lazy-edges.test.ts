// `pull --lazy` edges found by session 13's breaker, against the real registry (docker-registry on
// loopback) through the fault proxy, with images written by python's tarfile and GNU tar and pushed by
// skopeo: a layer holding a sparse file is pulled whole (lazy reads place tar bytes by offset, which a
// sparse file's stored segments do not fit); an index whose entries name no platform starts no
// referrers lookup for the manifests the pull does not choose; a pull that fails while its early
// referrers lookup hangs fails at once instead of waiting for that request to time out.
// Session 14's breaker: the lookup is optional, so its failures are warnings and a whole pull (a hang:
// one idle timeout, not five), garbage in the fallback tag is no index, a candidate whose blob is gone
// is skipped, a pull whose layers are all cached waits for no lookup, and a sparse layer an older vmimg
// placed lazily is not reused. Session 15: the lookup is bounded as a whole (its documents' deadline,
// which the pull's own waits do not spend and which cuts no other candidate's blobs; six index blobs at
// once, stopped together; a candidate with a bad blob dropped for every layer; no more patient than the
// client's own network settings).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pull, type PullOptions } from '../../src/image/pull.js';
import type { Image } from '../../src/image/image-dir.js';
import { openLazyImage } from '../../src/lazy/open-image.js';
import { IDX_MEDIA_TYPE, publishIndex } from '../../src/lazy/publish.js';
import { fallbackTag } from '../../src/manifest/referrers.js';
import { placeLazyLayer } from '../../src/lazy/place.js';
import { BLOB_FETCHES } from '../../src/lazy/lookup.js';
import { RegistryClient } from '../../src/registry/index.js';
import { CacheLayout } from '../../src/image/cache.js';
import { setDocumentLimits } from '../../src/manifest/limits.js';
import type { Platform } from '../../src/platform/types.js';
import { parseReference } from '../../src/reference/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { writeSparseFile } from '../helpers/layers.js';
import { OCI_MANIFEST, writeIndexIntoLayout } from '../helpers/oci-index.js';
import { pyBuild, type PyReport } from '../helpers/pyimage.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
/** The one-file layers of edge/many:1 (over `base`): more index blobs than the lookup fetches at once. */
const MANY = Array.from({ length: 12 }, (_, i) => `m${i}`);
/** edge/many:1 as its publisher pulled it. */
let many: Image;
let registry: RunningRegistry;
let proxy: FaultProxy;
let src: string;
let report: PyReport;
let seed: Image;
/** The cache `seed` was pulled into (its `.zran` files are there). */
let seedCache: string;

/** Pulls `ref` whole with checkpoints into a cache of its own and publishes its lazy index (what `pull --index-build` + `index push` do). */
async function publish(ref: string): Promise<Image> {
  const cacheRoot = await tmpDir('vmimg-edges-seed-');
  const image = await pull(ref, { cacheDir: cacheRoot, checkpoints: true, platform: AMD64 });
  const layers = image.config.layerDetails.map((l, i) => ({ digest: l.digest!, diffId: l.diffId, indexPath: image.layers[i]!.indexPath }));
  await publishIndex(parseReference(ref), image.config.source.manifestDigest!, layers, { cacheRoot });
  seedCache = cacheRoot;
  return image;
}

before(async () => {
  requireTools(['skopeo', 'tar']);
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  const work = await tmpDir('vmimg-edges-');
  src = join(work, 'src');
  await run('mkdir', ['-p', src]);
  writeSparseFile(join(src, 'sparse.img'));
  writeFileSync(join(src, 'after'), 'after the sparse file\n');
  writeFileSync(join(src, 'noise'), randomBytes(64 << 10)); // keeps the layer inside the 1000× expansion limit
  const sparseTar = join(work, 'sparse.tar');
  await run('tar', ['-c', '--sparse', '--format=gnu', '-f', sparseTar, '-C', src, 'sparse.img', 'after', 'noise']);
  const layout = join(work, 'layout');
  report = await pyBuild({
    layers: {
      base: [{ name: 'etc', type: 'dir' }, { name: 'etc/os-release', data: 'ID=edge\n' }],
      ...Object.fromEntries(MANY.map((name) => [name, [{ name: `${name}.txt`, data: `${name}\n` }]])),
    },
    layerFiles: { sparse: sparseTar },
    layout: {
      dir: layout,
      images: [{ layers: ['base', 'sparse'], tag: 'sparse', arch: 'amd64' }, { layers: ['base'], tag: 'arm', arch: 'arm64' }, { layers: ['base', ...MANY], tag: 'many', arch: 'amd64' }],
    },
  });
  // an index whose entries say no platform: the walk reads each manifest's config to learn it
  const entry = (i: number) => {
    const digest = report.layout![i]!.manifestDigest!;
    return { mediaType: OCI_MANIFEST, digest, size: statSync(join(layout, 'blobs', 'sha256', digest.slice(7))).size };
  };
  writeIndexIntoLayout(layout, 'multi', [entry(1), entry(0)]);
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:sparse`, `docker://${registry.host}/edge/sparse:1`]);
  await run('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${registry.host}/edge/multi:1`]);
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:many`, `docker://${registry.host}/edge/many:1`]);
  await publish(`${registry.host}/edge/multi:1`);
  many = await publish(`${registry.host}/edge/many:1`);
  seed = await publish(`${registry.host}/edge/sparse:1`);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('pull --lazy edges', () => {
  test('a layer holding a sparse file is pulled whole, with a warning; its bytes are the file\'s', async () => {
    const warnings: string[] = [];
    const image = await pull(`${proxy.host}/edge/sparse:1`, { cacheDir: await tmpDir('vmimg-edges-sparse-'), lazy: true, platform: AMD64, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /layer 2 .* holds sparse files, which are not read lazily: pulling it whole/);
    assert.deepEqual(image.config.layerDetails.map((l) => l.lazy === true), [true, false]);
    await assertFiles(image);
  });

  test('an index without platforms: the referrers are looked up for the chosen manifest only', async () => {
    const from = proxy.requests.length;
    const image = await pull(`${proxy.host}/edge/multi:1`, { cacheDir: await tmpDir('vmimg-edges-multi-'), lazy: true, platform: AMD64 });
    const chosen = report.layout![0]!.manifestDigest!;
    const other = report.layout![1]!.manifestDigest!;
    assert.equal(image.config.source.manifestDigest, chosen);
    const lookups = proxy.requests.slice(from).filter((r) => r.path.includes('/referrers/') || r.path.includes('/manifests/sha256-'));
    assert.ok(lookups.some((r) => r.path.includes(chosen.slice(7))), 'the chosen manifest\'s referrers were looked up');
    assert.deepEqual(lookups.filter((r) => r.path.includes(other.slice(7))).map((r) => r.path), [], 'none for the other manifest');
  });

  test('a pull failing while its early referrers lookup hangs fails at once, not when that request times out', async () => {
    const config = report.layout![0]!.configDigest;
    proxy.add({ method: 'GET', path: '/referrers/', times: 1, fault: { kind: 'slow-headers', everyMs: 1000 } });
    proxy.add({ method: 'GET', path: `/blobs/${config}`, times: 1, fault: { kind: 'status', status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}' } });
    const t = Date.now();
    try {
      await assert.rejects(pull(`${proxy.host}/edge/sparse:1`, { cacheDir: await tmpDir('vmimg-edges-fail-'), lazy: true, platform: AMD64 }), { code: 'ERR_NOT_FOUND' });
      // a hang bound, not a timing: the lookup's request would hold the client's close for its 30 s header timeout
      assert.ok(Date.now() - t < 15_000, `the pull took ${Date.now() - t} ms to fail`);
    } finally {
      proxy.clear();
    }
  });
});

/** `pull --lazy` of `repo` (edge/sparse:1) through the proxy into a fresh cache (unless `cacheDir`), collecting warnings. */
async function lazyPull(options: Partial<PullOptions> = {}, repo = 'edge/sparse:1'): Promise<{ image: Image; warnings: string[] }> {
  const warnings: string[] = [];
  const image = await pull(`${proxy.host}/${repo}`, { cacheDir: await tmpDir('vmimg-edges-lookup-'), lazy: true, platform: AMD64, onProgress: (e) => e.type === 'warning' && warnings.push(e.message), ...options });
  return { image, warnings };
}

/** The image's files read through a lazy open equal the sources. */
async function assertFiles(image: Image): Promise<void> {
  const lazy = await openLazyImage(image);
  const fs = await ContainerFS.open(lazy);
  try {
    for (const name of ['sparse.img', 'after', 'noise', 'etc/os-release']) {
      const ino = fs.resolvePath(`/${name}`, 'open');
      const want = name === 'etc/os-release' ? Buffer.from('ID=edge\n') : readFileSync(join(src, name));
      assert.ok((await fs.read(ino, 0, fs.getattr(ino).size)).equals(want), name);
    }
  } finally {
    await fs.close();
    await lazy.close();
  }
}

describe('pull --lazy: the index lookup is optional', () => {
  const manifest = (): string => seed.config.source.manifestDigest!;
  const lazyLayers = (image: Image): boolean[] => image.config.layerDetails.map((l) => l.lazy === true);

  test('a fallback tag holding garbage is no index: a warning and a whole pull, and `index push` writes over it', async () => {
    for (const body of ['{not json', '{"schemaVersion":2,"manifests":[null,5,"x",{"digest":7}]}']) {
      proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, fault: { kind: 'body', body: Buffer.from(body), contentType: 'application/vnd.oci.image.index.v1+json' } });
      try {
        const { image, warnings } = await lazyPull();
        assert.deepEqual(lazyLayers(image), [false, false], body);
        assert.ok(warnings.some((w) => /no lazy index is published/.test(w)), warnings.join('\n'));
      } finally {
        proxy.clear();
      }
    }
    // the publisher reads the tag through the proxy once as garbage, then as the registry holds it
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, times: 1, fault: { kind: 'body', body: Buffer.from('{not json') } });
    try {
      const layers = seed.config.layerDetails.map((l, i) => ({ digest: l.digest!, diffId: l.diffId, indexPath: seed.layers[i]!.indexPath }));
      const pushed = await publishIndex(parseReference(`${proxy.host}/edge/sparse:1`), manifest(), layers, { cacheRoot: seedCache });
      assert.equal(pushed.discovery, 'tag-fallback');
    } finally {
      proxy.clear();
    }
    assert.deepEqual(lazyLayers((await lazyPull()).image), [true, false], 'the index is found again');
  });

  test('a lookup that hangs past limits.lazyLookupBudgetMs is not retried: a warning and a whole pull', async () => {
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, fault: { kind: 'slow-headers', everyMs: 500 } });
    const from = proxy.requests.length;
    setDocumentLimits({ lazyLookupBudgetMs: 1000 }); // the default 10 s would retry a 1.5 s idle timeout
    try {
      const { image, warnings } = await lazyPull({ idleTimeoutMs: 1500 });
      assert.deepEqual(lazyLayers(image), [false, false]);
      assert.ok(warnings.some((w) => /could not be looked up .*: pulling the image whole/.test(w)), warnings.join('\n'));
      assert.equal(proxy.requests.slice(from).filter((r) => r.path.includes('/manifests/sha256-')).length, 1, 'one attempt');
      await assertFiles(image);
    } finally {
      setDocumentLimits({});
      proxy.clear();
    }
  });

  test('a 401 on the lookup whose token server fails leaves the rest of the pull anonymous, as the registry is', async () => {
    const tokens = createServer((_req, res) => res.writeHead(500).end('token server down'));
    await new Promise<void>((resolve) => tokens.listen(0, '127.0.0.1', resolve));
    const realm = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`;
    const challenge = `Bearer realm="${realm}",service="edge",scope="repository:edge/sparse:pull"`;
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, fault: { kind: 'status', status: 401, headers: { 'www-authenticate': challenge }, body: '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}' } });
    try {
      const { image, warnings } = await lazyPull();
      assert.deepEqual(lazyLayers(image), [false, false]);
      assert.ok(warnings.some((w) => /could not be looked up/.test(w)), warnings.join('\n'));
      await assertFiles(image);
    } finally {
      proxy.clear();
      await new Promise((resolve) => tokens.close(resolve));
    }
  });

  test('a pull whose layers are all cached whole does not wait for the lookup', async () => {
    const cacheDir = await tmpDir('vmimg-edges-cached-');
    await pull(`${proxy.host}/edge/sparse:1`, { cacheDir, platform: AMD64 });
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, fault: { kind: 'slow-headers', everyMs: 500 } });
    try {
      // waiting would end in the lookup's idle timeout and its warning
      const { image, warnings } = await lazyPull({ cacheDir, idleTimeoutMs: 1500 });
      assert.deepEqual(warnings, []);
      assert.deepEqual(lazyLayers(image), [false, false]);
    } finally {
      proxy.clear();
    }
  });

  /** The newest artifact published for `image` (edge/sparse:1): its digest, its `.idx` blobs by layer order, and the fallback tag's list. */
  async function published(image = seed, repository = 'edge/sparse'): Promise<{ digest: string; idx: string[]; list: Buffer }> {
    const client = new RegistryClient();
    const repo = { registry: registry.host, repository };
    try {
      const list = (await client.fetchManifest({ ...repo, tag: fallbackTag(image.config.source.manifestDigest!) })).bytes;
      const digest = (JSON.parse(list.toString('utf8')) as { manifests: { digest: string }[] }).manifests.at(-1)!.digest;
      const artifact = JSON.parse((await client.fetchManifest({ ...repo, digest })).bytes.toString('utf8')) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[] };
      const idx = image.config.layerDetails.map((l) => artifact.layers.find((a) => a.mediaType === IDX_MEDIA_TYPE && Object.values(a.annotations).includes(l.digest!))!.digest);
      return { digest, idx, list };
    } finally {
      await client.close();
    }
  }

  test("a candidate whose .idx blob is gone is skipped with a warning: the layer is pulled whole", async () => {
    const { idx } = await published();
    proxy.add({ method: 'GET', path: `/blobs/${idx[0]}`, fault: { kind: 'status', status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}' } });
    try {
      const { image, warnings } = await lazyPull();
      assert.deepEqual(lazyLayers(image), [false, false]);
      assert.ok(warnings.some((w) => /layer 1: the lazy index .* does not serve it/.test(w)), warnings.join('\n'));
      assert.ok(warnings.some((w) => /layer 1 .* is in no valid published lazy index: pulling it whole/.test(w)), warnings.join('\n'));
      await assertFiles(image);
    } finally {
      proxy.clear();
    }
  });

  test('the lookup\'s documents share one deadline: a registry slow at every stage ends it at limits.lazyLookupBudgetMs', async () => {
    // each stage alone succeeds within the budget (two 503s wait 0.75-1.5 s); three of them cannot (>= 2.25 s)
    const { digest } = await published();
    const unavailable = { kind: 'status', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}' } as const;
    proxy.add({ method: 'GET', path: '/referrers/', times: 2, fault: unavailable });
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, times: 2, fault: unavailable });
    proxy.add({ method: 'GET', path: `/manifests/${digest}`, times: 2, fault: unavailable });
    setDocumentLimits({ lazyLookupBudgetMs: 2000 });
    try {
      const { image, warnings } = await lazyPull();
      assert.deepEqual(lazyLayers(image), [false, false]);
      assert.ok(warnings.some((w) => /no answer within the lookup's 2(\.0)? s \(limits\.lazyLookupBudgetMs\).*pulling the image whole/.test(w)), warnings.join('\n'));
      await assertFiles(image);
    } finally {
      setDocumentLimits({});
      proxy.clear();
    }
  });

  test("a registry failing one layer's index blob stops the other layers' index blobs at once", async () => {
    const { idx } = await published();
    proxy.add({ method: 'GET', path: `/blobs/${idx[0]}`, fault: { kind: 'status', status: 403, body: '{"errors":[{"code":"DENIED","message":"denied"}]}' } });
    proxy.add({ method: 'GET', path: `/blobs/${idx[1]}`, fault: { kind: 'slow-headers', everyMs: 500 } });
    setDocumentLimits({ lazyLookupBudgetMs: 60_000 }); // each request of the lookup may wait that long for a byte
    const t = Date.now();
    try {
      const { image, warnings } = await lazyPull();
      // a hang bound, not a timing: without the shared abort the second blob holds the pull its 60 s idle timeout
      assert.ok(Date.now() - t < 30_000, `the pull took ${Date.now() - t} ms`);
      assert.deepEqual(lazyLayers(image), [false, false]);
      assert.ok(warnings.some((w) => /the registry failed serving the lazy index .*: pulling the layers not placed yet whole/.test(w)), warnings.join('\n'));
      await assertFiles(image);
    } finally {
      setDocumentLimits({});
      proxy.clear();
    }
  });

  test("the pull's own waits before a layer needs the lookup (its config, a prune's lock) do not count against its deadline", async () => {
    // the config answers 429 with a Retry-After longer than the lookup's budget, which the pull waits out
    proxy.add({ method: 'GET', path: `/blobs/${seed.config.source.configDigest}`, times: 1, fault: { kind: 'status', status: 429, headers: { 'retry-after': '3' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' } });
    setDocumentLimits({ lazyLookupBudgetMs: 2000 });
    try {
      const { image, warnings } = await lazyPull();
      assert.deepEqual(lazyLayers(image), [true, false], warnings.join('\n'));
    } finally {
      setDocumentLimits({});
      proxy.clear();
    }
  });

  test('a candidate hanging past the deadline does not stop the others: the newest that loads is used', async () => {
    const { list } = await published();
    // a newer candidate next to the real one, whose manifest never comes
    const doc = JSON.parse(list.toString('utf8')) as { manifests: Record<string, unknown>[] };
    const real = doc.manifests.at(-1)!;
    const hanging = `sha256:${'e'.repeat(64)}`;
    doc.manifests.push({ ...real, digest: hanging, annotations: { ...(real.annotations as object), 'org.opencontainers.image.created': '2999-01-01T00:00:00Z' } });
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, fault: { kind: 'body', body: Buffer.from(JSON.stringify(doc)), contentType: 'application/vnd.oci.image.index.v1+json' } });
    proxy.add({ method: 'GET', path: `/manifests/${hanging}`, fault: { kind: 'slow-headers', everyMs: 500 } });
    setDocumentLimits({ lazyLookupBudgetMs: 2000 });
    try {
      const { image, warnings } = await lazyPull();
      assert.deepEqual(lazyLayers(image), [true, false], warnings.join('\n'));
      assert.ok(warnings.some((w) => /1 of the lazy indexes listed .* could not be read \(no answer within the lookup's 2(\.0)? s .*using the others/.test(w)), warnings.join('\n'));
      await assertFiles(image);
    } finally {
      setDocumentLimits({});
      proxy.clear();
    }
  });

  test('a 503 storm on the index blobs of 13 layers: a few requests retried, told once, one warning, a whole pull', async () => {
    const { idx } = await published(many, 'edge/many');
    for (const d of idx) proxy.add({ method: 'GET', path: `/blobs/${d}`, fault: { kind: 'status', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}' } });
    const from = proxy.requests.length;
    let retries = 0;
    const warnings: string[] = [];
    try {
      const { image } = await lazyPull({ onProgress: (e) => (e.type === 'warning' ? warnings.push(e.message) : e.type === 'retry' ? retries++ : 0) }, 'edge/many:1');
      // each attempt told once, not once per request failing together (6 slots × 4 retries: 24 lines)
      assert.ok(retries <= 4, `${retries} retry notices`);
      assert.ok(image.config.layerDetails.every((l) => l.lazy !== true));
      const asked = proxy.requests.slice(from).filter((r) => idx.some((d) => r.path.endsWith(d))).length;
      // at most BLOB_FETCHES requests retried to their 5 attempts, and one more per slot freed as the first gives up
      // (each of the 13 layers retrying on its own: 65)
      assert.ok(asked <= BLOB_FETCHES * 5 + BLOB_FETCHES, `${asked} index-blob requests`);
      assert.equal(warnings.filter((w) => /the registry failed serving the lazy index/.test(w)).length, 1, warnings.join('\n'));
    } finally {
      proxy.clear();
    }
  });

  test('index blobs gone from every layer: three warnings, not two per layer', async () => {
    const { idx } = await published(many, 'edge/many');
    for (const d of idx) proxy.add({ method: 'GET', path: `/blobs/${d}`, fault: { kind: 'status', status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}' } });
    try {
      const { image, warnings } = await lazyPull({}, 'edge/many:1');
      assert.ok(image.config.layerDetails.every((l) => l.lazy !== true));
      assert.equal(warnings.length, 3, warnings.join('\n'));
      assert.match(warnings.join('\n'), /does not serve it .*trying the next one for this layer/);
      assert.match(warnings.join('\n'), /is in no valid published lazy index: pulling it whole/);
      assert.match(warnings.join('\n'), /13 layers in all were in no valid published lazy index and were pulled whole/);
    } finally {
      proxy.clear();
    }
  });

  test("one layer's index blob gone: that layer is pulled whole, the index still serves the others", async () => {
    const { idx } = await published(many, 'edge/many');
    proxy.add({ method: 'GET', path: `/blobs/${idx[1]}`, fault: { kind: 'status', status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}' } });
    try {
      const { image, warnings } = await lazyPull({}, 'edge/many:1');
      assert.deepEqual(image.config.layerDetails.map((l) => l.lazy === true), image.config.layerDetails.map((_, i) => i !== 1), warnings.join('\n'));
      assert.equal(warnings.length, 2, warnings.join('\n'));
    } finally {
      proxy.clear();
    }
  });

  test("the lookup is no more patient than the client's network settings", async () => {
    proxy.add({ method: 'GET', path: `/manifests/${fallbackTag(manifest())}`, fault: { kind: 'slow-headers', everyMs: 500 } });
    // the lookup's own budget, 60 s here, would hold the pull that long; the client's idle timeout is 1.5 s
    setDocumentLimits({ lazyLookupBudgetMs: 60_000 });
    const t = Date.now();
    try {
      const { image, warnings } = await lazyPull({ idleTimeoutMs: 1500, retry: { budgetMs: 1000 } });
      assert.ok(Date.now() - t < 30_000, `a hang bound, not a timing: the pull took ${Date.now() - t} ms`);
      assert.deepEqual(lazyLayers(image), [false, false]);
      assert.ok(warnings.some((w) => /could not be looked up/.test(w)), warnings.join('\n'));
    } finally {
      setDocumentLimits({});
      proxy.clear();
    }
  });

  test('a sparse layer an older vmimg placed lazily is not reused: the pull flattens it whole', async () => {
    const cacheDir = await tmpDir('vmimg-edges-old-');
    const cache = new CacheLayout(cacheDir);
    const d = seed.config.layerDetails[1]!;
    // what vmimg before 63429f8 placed: the sparse layer's index with empty spans
    await placeLazyLayer(cache.layersDir, cache.root, { digest: d.digest!, diffId: d.diffId, size: d.compressedSize! }, readFileSync(seed.layers[1]!.indexPath), undefined);
    const { image, warnings } = await lazyPull({ cacheDir });
    assert.deepEqual(lazyLayers(image), [true, false]);
    assert.ok(warnings.some((w) => /holds sparse files/.test(w)), warnings.join('\n'));
    await assertFiles(image);
  });
});
