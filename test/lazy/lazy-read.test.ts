// Lazy reads of a layer from the real registry (docker-registry on loopback, the Debian test image made
// by umoci and pushed by skopeo), through the fault proxy: every file read through spans equals the
// eager flatten; one request per run of spans, one for concurrent readers; Range ignored, a corrupted
// span and a wrong Content-Range behave as docs/FORMAT.md and issue 15 say.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pull } from '../../src/image/pull.js';
import { encodeIndex, readIndexFile, scanIndex, type IndexHeader } from '../../src/layer/index-format.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';
import { CheckpointBuilder } from '../../src/lazy/checkpoint-builder.js';
import { LazyContent } from '../../src/lazy/lazy-content.js';
import { registryRangeSource } from '../../src/lazy/registry-source.js';
import { fileTable, spanAt } from '../../src/lazy/placed-files.js';
import { spanRange, type ZranIndex } from '../../src/lazy/zran-format.js';
import { RegistryClient } from '../../src/registry/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { debianArchive } from '../boot/debian-fixture.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let layer: { digest: string; size: number; indexPath: string; contentsPath: string; entries: IndexEntry[]; header: IndexHeader; contentsSize: number };
let zran: ZranIndex;
let blobDir: string;
const client = new RegistryClient();
const REPO = 'lazy/debian';

before(async () => {
  requireTools(['skopeo']);
  const [archive, reg] = await Promise.all([debianArchive('amd64'), startRegistry()]);
  registry = reg;
  proxy = await startFaultProxy(registry.url);
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}:latest`, `docker://${registry.host}/${REPO}:1`]);
  const cache = await tmpDir('vmimg-lazy-read-');
  const image = await pull(`${registry.host}/${REPO}:1`, { cacheDir: cache });
  const details = image.config.layerDetails.filter((l) => (l.compressedSize ?? 0) > 10 << 20);
  assert.equal(details.length, 1, 'the Debian test image has one 10+ MiB layer');
  const d = details[0]!;
  const files = image.layers.find((l) => l.diffId === d.diffId)!;
  const decoded = await readIndexFile(files.indexPath);
  assert.equal(decoded.header.version, 2, 'an .idx with tar offsets');
  layer = { digest: d.digest!, size: d.compressedSize!, indexPath: files.indexPath, contentsPath: files.contentsPath, entries: decoded.entries, header: decoded.header, contentsSize: decoded.header.contentsSize };
  const b = new CheckpointBuilder({ spanSize: 1 << 20 });
  blobDir = join(cache, 'blobs', 'sha256');
  b.push(readFileSync(join(blobDir, layer.digest.slice(7))));
  zran = b.finish({ digest: layer.digest, diffId: d.diffId });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await client.close();
});

/** A fresh lazy copy of the layer: its .idx, an empty sparse .contents, no .spans; read through the proxy. */
async function lazyLayer(warnings: string[] = [], entries: IndexEntry[] = layer.entries, readAheadBytes?: number, signal?: AbortSignal): Promise<{ lazy: LazyContent; dir: string; spansPath: string; contentsPath: string }> {
  const dir = await tmpDir('vmimg-lazy-layer-');
  const contentsPath = join(dir, 'layer.contents');
  writeFileSync(contentsPath, '');
  truncateSync(contentsPath, layer.contentsSize);
  const spansPath = join(dir, 'layer.spans');
  const source = registryRangeSource(client, { registry: proxy.host, repository: REPO }, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }, { signal });
  // the layer's own .idx, or (a test's changed entries) one encoded from them
  const files = fileTable(scanIndex(entries === layer.entries ? readFileSync(layer.indexPath) : encodeIndex(layer.header, entries)));
  const lazy = await LazyContent.open({ zran, files, digest: layer.digest, contentsPath, spansPath, source, warn: (m) => warnings.push(m), ...(readAheadBytes !== undefined ? { readAheadBytes } : {}) });
  copyFileSync(layer.indexPath, join(dir, 'layer.idx'));
  return { lazy, dir, spansPath, contentsPath };
}

/** `bytes=A-B` → [A, B]. */
function rangeOf(range: string | undefined): [number, number] {
  const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
  assert.ok(m, `a bounded Range header: ${range}`);
  return [Number(m[1]), Number(m[2])];
}

function blobRequests(): number {
  return proxy.requests.filter((r) => r.method === 'GET' && r.path.includes(`/blobs/${layer.digest}`)).length;
}

async function readFile(lazy: LazyContent, e: IndexEntry): Promise<Buffer> {
  const buf = Buffer.alloc(e.size);
  await lazy.readInto(buf, 0, e.size, e.offset);
  return buf;
}

describe('lazy reads', () => {
  test("the file table read from the .idx records is the decoded entries' files with content, once per .contents offset", () => {
    const { files, sparse } = fileTable(scanIndex(readFileSync(layer.indexPath)));
    const byOffset = new Map<number, IndexEntry>();
    for (const e of layer.entries) if (e.size > 0 && !byOffset.has(e.offset)) byOffset.set(e.offset, e);
    const expected = [...byOffset.values()].sort((a, b) => a.offset - b.offset).map((e) => ({ offset: e.offset, size: e.size, tarOffset: e.tarOffset, sha256: e.sha256, verified: false }));
    assert.ok(expected.length > 500, `${expected.length} files`);
    assert.ok(layer.entries.some((e) => e.type !== EntryType.File && e.size === 0), 'entries without content are left out');
    assert.deepEqual(files, expected);
    assert.equal(sparse, false);
    // a sparse file with content makes the table sparse; a v1 index places nothing
    const i = layer.entries.findIndex((e) => e.path === 'etc/passwd');
    const withSparse = layer.entries.map((e, k) => (k === i ? { ...e, tarSparse: { headerOffset: 0, storedSize: 1 } } : e));
    assert.equal(fileTable(scanIndex(encodeIndex(layer.header, withSparse))).sparse, true);
    // a hardlink carries its target's size and offset: the bytes are placed once
    const link = { ...layer.entries[i]!, type: EntryType.Hardlink, path: 'etc/passwd.link', linkTarget: 'etc/passwd' };
    assert.deepEqual(fileTable(scanIndex(encodeIndex(layer.header, [...layer.entries, link]))).files, files);
    assert.deepEqual(fileTable(scanIndex(encodeIndex(layer.header, layer.entries, 1))).files, []);
  });

  test('every file read through spans equals the eager flatten; a second pass fetches nothing', async () => {
    proxy.clear();
    const eager = readFileSync(layer.contentsPath);
    const { lazy, contentsPath } = await lazyLayer();
    const files = layer.entries.filter((e) => e.type === 1 && e.size > 0);
    const before = blobRequests();
    for (const e of files) assert.ok((await readFile(lazy, e)).equals(eager.subarray(e.offset, e.offset + e.size)), e.path);
    await lazy.settled(); // the last run may still be syncing its bits after its spans' bytes were read
    assert.ok(lazy.complete);
    const requests = blobRequests() - before;
    assert.ok(requests <= zran.checkpoints.length, `${requests} requests for ${zran.checkpoints.length} spans`);
    assert.equal(lazy.stats.spansVerified, zran.checkpoints.length);
    for (const e of files.slice(0, 50)) await readFile(lazy, e);
    assert.equal(blobRequests() - before, requests, 'all hits the second time');
    await lazy.close();
    assert.ok(readFileSync(contentsPath).equals(eager), 'a fully read layer is the eager .contents');
  });

  test('ContainerFS over the lazy reader: /etc/passwd and /bin/sh resolve and read like the eager image', async () => {
    const { lazy, dir } = await lazyLayer();
    const fs = await ContainerFS.open([{ indexPath: join(dir, 'layer.idx'), content: lazy }]);
    const eagerFs = await ContainerFS.open([{ indexPath: layer.indexPath, contentsPath: layer.contentsPath }]);
    try {
      for (const p of ['/etc/passwd', '/bin/sh', '/bin/ls']) {
        const a = fs.resolvePath(p, 'open');
        const b = eagerFs.resolvePath(p, 'open');
        const size = eagerFs.getattr(b).size;
        assert.ok((await fs.read(a, 0, size)).equals(await eagerFs.read(b, 0, size)), p);
      }
      assert.ok(!lazy.complete, 'three files fetched only some spans');
    } finally {
      await fs.close();
      await eagerFs.close();
      await lazy.close();
    }
  });

  test('concurrent readers of one span cause one GET; adjacent missing spans are one GET', async () => {
    const { lazy } = await lazyLayer();
    const big = layer.entries.filter((e) => e.type === 1).sort((a, b) => b.size - a.size)[0]!;
    const before = blobRequests();
    await Promise.all(Array.from({ length: 8 }, () => readFile(lazy, big)));
    assert.equal(blobRequests() - before, 1, `one request for ${big.path} (${big.size} bytes) read 8 times at once`);
    assert.equal(lazy.stats.rangeRequests, 1);
    await lazy.close();
  });

  test('two processes reading one layer fetch its spans once: the second waits on the first one\'s span locks, then reads its bytes', async () => {
    // two readers with their own in-flight maps share only the files, as two processes do
    const first = await lazyLayer([], layer.entries, 0);
    const own = new RegistryClient(); // a process of its own: its own connections
    const source = registryRangeSource(own, { registry: proxy.host, repository: REPO }, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size });
    const second = await LazyContent.open({ zran, files: fileTable(scanIndex(readFileSync(layer.indexPath))), digest: layer.digest, contentsPath: first.contentsPath, spansPath: first.spansPath, source, readAheadBytes: 0 });
    const big = layer.entries.filter((e) => e.type === 1).sort((a, b) => b.size - a.size)[0]!;
    let reached!: () => void;
    let release!: () => void;
    const held = new Promise<void>((r) => (reached = r));
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, times: 1, fault: { kind: 'hold', afterBytes: 1000, reached: () => reached(), release: new Promise<void>((r) => (release = r)) } });
    const before = blobRequests();
    const a = readFile(first.lazy, big);
    await held; // the first reader's request is under way, its spans locked
    const b = readFile(second, big);
    const waiting = (async () => {
      while (second.stats.spansWaited === 0) await new Promise((r) => setTimeout(r, 5));
    })();
    await Promise.race([waiting, b]); // b ends first only if it fetched by itself
    release();
    const [bytesA, bytesB] = await Promise.all([a, b]);
    const eager = readFileSync(layer.contentsPath).subarray(big.offset, big.offset + big.size);
    assert.ok(bytesA.equals(eager) && bytesB.equals(eager), 'both read the eager bytes');
    assert.equal(second.stats.rangeRequests, 0, 'the second reader fetched nothing');
    assert.ok(second.stats.spansWaited > 0);
    assert.equal(blobRequests() - before, 1, `one request for ${big.path} read by two readers`);
    await Promise.all([first.lazy.close(), second.close()]);
    await own.close();
    assert.deepEqual(readdirSync(first.dir).filter((n) => n.includes('.lock.')), [], 'no lock file left');
  });

  test('read-ahead: the first random reads fetch only their spans; a reader in tar order gets the next spans in batches', async () => {
    const eager = readFileSync(layer.contentsPath);
    const { lazy } = await lazyLayer();
    const files = layer.entries.filter((e) => e.type === 1 && e.size > 0).sort((a, b) => a.offset - b.offset);
    const spanBytes = (i: number): number => spanRange(zran, i).cEnd - spanRange(zran, i).cStart;
    // Two random reads far apart: each fetches exactly the spans holding its file, nothing ahead.
    const random = [layer.entries.find((x) => x.path === 'etc/passwd')!, files[Math.floor(files.length / 2)]!];
    let expected = 0;
    for (const e of random) {
      const [lo, hi] = [spanAt(zran, e.tarOffset!), spanAt(zran, e.tarOffset! + e.size - 1)];
      for (let i = lo; i <= hi; i++) expected += spanBytes(i);
      await readFile(lazy, e);
    }
    assert.equal(lazy.stats.spansReadAhead, 0, 'random reads trigger no read-ahead');
    assert.equal(lazy.stats.rangeBytes, expected, 'the bytes of the spans read, no more');
    // Every file in tar order, as a scan does: after two spans in a row, the reads find the next ones coming.
    const before = lazy.stats.rangeRequests;
    for (const e of files) assert.ok((await readFile(lazy, e)).equals(eager.subarray(e.offset, e.offset + e.size)), e.path);
    await lazy.close(); // waits for the read-ahead still under way
    assert.ok(lazy.complete);
    assert.ok(lazy.stats.spansReadAhead > zran.checkpoints.length / 2, `${lazy.stats.spansReadAhead} of ${zran.checkpoints.length} spans read ahead`);
    const requests = lazy.stats.rangeRequests - before;
    assert.ok(requests < zran.checkpoints.length / 3, `${requests} requests for ${zran.checkpoints.length} spans: read-ahead batches them`);
  });

  test('read-ahead off (limits.lazyReadAheadBytes 0): a reader in tar order fetches span by span', async () => {
    const { lazy } = await lazyLayer([], layer.entries, 0);
    for (const e of layer.entries.filter((x) => x.type === 1 && x.size > 0).slice(0, 400)) await readFile(lazy, e);
    await lazy.settled(); // a read returns once its own bytes landed: the last span may still be placing the rest
    assert.equal(lazy.stats.spansReadAhead, 0);
    assert.equal(lazy.stats.spansFetched, lazy.stats.rangeRequests, 'one span per request: each read fetches only what it touches');
    await lazy.close();
  });

  test('a registry ignoring Range: the whole blob, verified, with a warning', async () => {
    const warnings: string[] = [];
    const { lazy } = await lazyLayer(warnings);
    proxy.add({ path: `/blobs/${layer.digest}`, fault: { kind: 'ignore-range' }, times: 1 });
    const e = layer.entries.find((x) => x.path === 'etc/passwd')!;
    assert.ok((await readFile(lazy, e)).equals(readFileSync(layer.contentsPath).subarray(e.offset, e.offset + e.size)));
    assert.match(warnings.join('\n'), /ignored a Range request/);
    assert.equal(lazy.stats.wholeBlobFetches, 1);
    assert.ok(lazy.complete);
    proxy.clear();
    await lazy.close();
  });

  test('a corrupted span byte is ERR_DIGEST_MISMATCH and nothing is cached; the next read succeeds', async () => {
    const { lazy, spansPath } = await lazyLayer();
    proxy.add({ path: `/blobs/${layer.digest}`, fault: { kind: 'corrupt' }, times: 1 });
    const e = layer.entries.find((x) => x.path === 'etc/passwd')!;
    await assert.rejects(readFile(lazy, e), { code: 'ERR_DIGEST_MISMATCH' });
    assert.ok(!existsSync(spansPath), 'no span marked present');
    assert.ok((await readFile(lazy, e)).equals(readFileSync(layer.contentsPath).subarray(e.offset, e.offset + e.size)));
    proxy.clear();
    await lazy.close();
  });

  test('a 206 whose Content-Range starts elsewhere is ERR_REGISTRY_ERROR', async () => {
    const { lazy } = await lazyLayer();
    const e = layer.entries.filter((x) => x.type === 1 && x.tarOffset! > 4 << 20)[0]!;
    proxy.add({ path: `/blobs/${layer.digest}`, fault: { kind: 'status', status: 206, headers: { 'content-range': `bytes 0-9/${layer.size}` }, body: '0123456789' }, times: 1 });
    await assert.rejects(readFile(lazy, e), { code: 'ERR_REGISTRY_ERROR' });
    proxy.clear();
    assert.equal((await readFile(lazy, e)).length, e.size);
    await lazy.close();
  });

  test('the registry cutting a range mid-body: the rest of the range is asked again (retry policy) and the read succeeds', async () => {
    const { lazy } = await lazyLayer();
    const e = layer.entries.find((x) => x.path === 'etc/passwd')!;
    const first = proxy.requests.length;
    proxy.add({ path: `/blobs/${layer.digest}`, fault: { kind: 'reset', afterBytes: 100_000 }, times: 1 });
    assert.ok((await readFile(lazy, e)).equals(readFileSync(layer.contentsPath).subarray(e.offset, e.offset + e.size)));
    const seen = proxy.requests.slice(first).filter((r) => r.path.includes(`/blobs/${layer.digest}`));
    assert.equal(seen.length, 2, 'the reset request and one more');
    assert.equal(seen[0]!.fault, 'reset');
    const [from0] = rangeOf(seen[0]!.range);
    const [from1, end1] = rangeOf(seen[1]!.range);
    assert.ok(from1 > from0, `the second request resumes past what arrived (${seen[0]!.range} then ${seen[1]!.range})`);
    assert.equal(end1, rangeOf(seen[0]!.range)[1], 'and ends where the first one did');
    proxy.clear();
    await lazy.close();
  });

  test('a range that stalls mid-body is cut by the throughput rule and asked again; the retry is announced', async () => {
    const notices: string[] = [];
    const slow = new RegistryClient({ throughput: { windowMs: 300, stallNoticeMs: 100 }, retry: { baseDelayMs: 10 } });
    const source = registryRangeSource(slow, { registry: proxy.host, repository: REPO }, { mediaType: 'application/octet-stream', digest: layer.digest, size: layer.size }, { onNotice: (n) => notices.push(n.kind) });
    proxy.add({ path: `/blobs/${layer.digest}`, fault: { kind: 'stall', afterBytes: 50_000 }, times: 1 });
    const answer = await source.read(0, 200_000);
    proxy.clear();
    await slow.close();
    assert.equal(answer.kind, 'range');
    const blob = readFileSync(join(blobDir, layer.digest.slice(7)));
    assert.ok(answer.kind === 'range' && answer.bytes.equals(blob.subarray(0, 200_000)), 'the bytes of the blob');
    assert.ok(notices.includes('retry'), `notices: ${notices.join(', ')}`);
  });

  test('many ranges at once under one abort signal print no MaxListenersExceededWarning (a child signal per read)', async () => {
    const seen: Error[] = [];
    const onWarning = (w: Error): void => void seen.push(w);
    process.on('warning', onWarning);
    const { lazy } = await lazyLayer([], layer.entries, 0, new AbortController().signal);
    // one file in each span, all read at once: more concurrent requests than Node's limit of 10 listeners
    const bySpan = new Map<number, IndexEntry>();
    for (const e of layer.entries.filter((x) => x.type === 1 && x.size > 0)) {
      const span = spanAt(zran, e.tarOffset!);
      if (span === spanAt(zran, e.tarOffset! + e.size - 1) && !bySpan.has(span)) bySpan.set(span, e);
    }
    assert.ok(bySpan.size > 10, `${bySpan.size} spans with a file of their own`);
    const files = [...bySpan.values()];
    const read = await Promise.all(files.map((e) => readFile(lazy, e)));
    await new Promise((r) => setImmediate(r)); // process warnings are emitted on a later tick
    process.off('warning', onWarning);
    const contents = readFileSync(layer.contentsPath);
    files.forEach((e, i) => assert.ok(read[i]!.equals(contents.subarray(e.offset, e.offset + e.size)), e.path));
    assert.ok(lazy.stats.rangeRequests > 10, `${lazy.stats.rangeRequests} range requests`);
    assert.deepEqual(seen.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), []);
    await lazy.close();
  });

  test('a layer whose index holds a sparse file is refused before anything is fetched (lazy reads place tar bytes by offset)', async () => {
    const target = layer.entries.find((x) => x.path === 'etc/passwd')!;
    const entries = layer.entries.map((x) => (x === target ? { ...x, tarSparse: { headerOffset: 0, storedSize: 1 } } : x));
    const before = blobRequests();
    const { lazy, spansPath } = await lazyLayer([], entries);
    await assert.rejects(readFile(lazy, target), { code: 'ERR_INVALID_IMAGE', message: /holds sparse files/ });
    assert.equal(blobRequests(), before, 'nothing fetched');
    assert.equal(existsSync(spansPath), false, 'no span recorded');
    await lazy.close();
  });

  test("a file read whole is checked against the .idx sha256 (an index that does not match the blob)", async () => {
    const target = layer.entries.find((x) => x.path === 'etc/passwd')!;
    const entries = layer.entries.map((x) => (x === target ? { ...x, sha256: '0'.repeat(64) } : x));
    const { lazy } = await lazyLayer([], entries);
    await assert.rejects(readFile(lazy, target), { code: 'ERR_DIGEST_MISMATCH' });
    await lazy.close();
  });
});
