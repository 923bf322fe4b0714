// Flattening real layers (umoci, GNU tar, zstd CLI) and comparing with what GNU tar extracts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { flattenLayer, hasLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';
import { isVmimgError } from '../../src/errors.js';
import { childNode } from '../helpers/cache.js';
import { run, tmpDir } from '../helpers/tools.js';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import {
  BIG_FILE_BYTES, LONG_NAME, PING_CAP, UNICODE_NAME, USER_BIN, buildGnuTarSource, buildRichImage, compareWithReference,
  entryKey, extractWithGnuTar, layoutLayers, gnuTar, tarBytes, walkReference, xattrsOf, zstdCompress, type LayerBlob,
} from '../helpers/layers.js';

const hex = (b: Buffer): string => b.toString('hex');

async function flattenAndRead(source: Readable, dir: string, opts: { digest?: string; diffId?: string } = {}) {
  const info = await flattenLayer(source, {
    dir,
    ...(opts.digest ? { expectedDigest: opts.digest } : {}),
    ...(opts.diffId ? { expectedDiffId: opts.diffId } : {}),
  });
  const { header, entries } = await readIndexFile(info.indexPath);
  return { info, header, entries, contents: readFileSync(info.contentsPath) };
}

async function assertMatchesGnuTar(tar: Buffer, entries: IndexEntry[], contents: Buffer, what: string): Promise<string> {
  const root = await extractWithGnuTar(tar);
  const problems = compareWithReference(entries, walkReference(root), contents);
  assert.deepEqual(problems, [], `${what} differs from GNU tar's extraction`);
  return root;
}

function byPath(entries: IndexEntry[]): Map<string, IndexEntry> {
  return new Map(entries.map((e) => [entryKey(e), e]));
}

let layers: LayerBlob[];

test('umoci image: every layer flattens to what GNU tar extracts, both digests verified', async () => {
  ({ layers } = await buildRichImage());
  assert.equal(layers.length, 6, 'busybox base + rich + 2 whiteouts + opaque + override');
  const dir = await tmpDir('vmimg-flat-');
  for (const [i, layer] of layers.entries()) {
    const { info, header, entries, contents } = await flattenAndRead(createReadStream(layer.path), dir, { digest: layer.digest, diffId: layer.diffId });
    assert.equal(info.diffId, layer.diffId);
    assert.equal(header.digest, layer.digest);
    assert.equal(info.compressedSize, readFileSync(layer.path).length);
    assert.equal(header.entryCount, entries.length);
    await assertMatchesGnuTar(tarBytes(readFileSync(layer.path)), entries, contents, `layer ${i}`);
  }
});

test('umoci image: whiteouts, opaque dir, overrides and the rich layer have the right entries', async () => {
  ({ layers } = await buildRichImage());
  const dir = await tmpDir('vmimg-flat-');
  const read = async (i: number) => {
    const { entries } = await flattenAndRead(createReadStream(layers[i]!.path), dir);
    const real = entries.filter((e) => e.type !== EntryType.Whiteout && e.type !== EntryType.Opaque);
    return Object.assign(byPath(real), { all: entries });
  };
  const base = await read(0);
  assert.equal(base.get('bin/sh')?.linkTarget, '/bin/busybox');
  assert.ok((base.get('bin/busybox')?.size ?? 0) > 500_000, 'Debian busybox-static binary');
  const rich = await read(1);
  assert.deepEqual([rich.get('dev/null')?.type, rich.get('dev/null')?.devMajor, rich.get('dev/null')?.devMinor], [EntryType.CharDevice, 1, 3]);
  assert.equal(rich.get('dev/sda')?.mode, 0o060660);
  assert.equal(rich.get('run/initctl')?.mode, 0o010644);
  assert.equal(rich.get('usr/bin/su')?.mode, 0o104755);
  assert.equal(rich.get('usr/bin/wall')?.mode, 0o102755);
  assert.equal(rich.get('srv/sticky')?.mode, 0o041777);
  const ping = rich.get('usr/bin/ping')!;
  assert.equal(hex(ping.xattrs!['security.capability']!), PING_CAP.slice(2));
  assert.equal(hex(ping.xattrs!['user.bin']!), USER_BIN.slice(2));
  assert.equal(ping.xattrs!['user.comment']!.toString(), 'hello xattr');
  // umoci walks in name order, so data/link is the file and the other names link to it.
  const names = ['data/link', 'data/orig', 'data/sub/link2'].map((n) => rich.get(n)!);
  assert.deepEqual(names.map((e) => e.type), [EntryType.File, EntryType.Hardlink, EntryType.Hardlink]);
  for (const e of names.slice(1)) {
    assert.equal(e.linkTarget, 'data/link');
    assert.deepEqual([e.sha256, e.size, e.offset, e.mode], [names[0]!.sha256, names[0]!.size, names[0]!.offset, names[0]!.mode]);
  }
  assert.equal(rich.get('links/loop1')?.linkTarget, 'loop2');
  assert.equal(rich.get('links/dangling')?.linkTarget, '../nowhere/at/all');
  assert.ok(rich.get(Buffer.from(LONG_NAME).toString('latin1')), 'long name kept');
  assert.equal(rich.get(Buffer.from(UNICODE_NAME).toString('latin1'))?.path, UNICODE_NAME);
  assert.ok(rich.get('weird/tab\there') && rich.get('weird/new\nline'));
  const big = rich.get('data/big.bin')!;
  assert.equal(big.size, BIG_FILE_BYTES);
  assert.equal(big.offset % 4096, 0);
  const wh1 = await read(2);
  assert.deepEqual(wh1.all.filter((e) => e.type === EntryType.Whiteout).map((e) => e.path), ['etc/arch']);
  const wh2 = await read(3);
  assert.ok(wh2.all.some((e) => e.type === EntryType.Whiteout && e.path === 'links/dangling'));
  const opq = await read(4);
  assert.ok(opq.all.some((e) => e.type === EntryType.Opaque && e.path === 'data'));
  assert.equal(opq.get('data/fresh.txt')?.type, EntryType.File);
  const ref = await extractWithGnuTar(tarBytes(readFileSync(layers[1]!.path)));
  const refXattrs = await xattrsOf(join(ref, 'usr/bin/ping'));
  assert.equal(refXattrs['security.capability'], PING_CAP.slice(2));
  assert.equal(refXattrs['user.bin'], USER_BIN.slice(2));
});

test('a single-layer busybox image flattens to what `umoci unpack` produces', async () => {
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'single' });
  const [layer] = layoutLayers(image.layout, image.manifestDigest);
  const bundle = join(await tmpDir('vmimg-unpack-'), 'bundle');
  await run('umoci', ['unpack', '--image', image.ref, bundle]);
  const { entries, contents } = await flattenAndRead(createReadStream(layer!.path), await tmpDir('vmimg-flat-'), { diffId: layer!.diffId });
  assert.deepEqual(compareWithReference(entries, walkReference(join(bundle, 'rootfs')), contents), []);
});

test('GNU tar layers (gnu, oldgnu, posix formats): long names, non-UTF-8 name, nanosecond mtime', async () => {
  const src = await buildGnuTarSource();
  const dir = await tmpDir('vmimg-flat-');
  for (const format of ['gnu', 'oldgnu', 'posix'] as const) {
    const tar = await gnuTar(src, format);
    const { info, entries, contents } = await flattenAndRead(Readable.from([tar]), dir);
    assert.equal(info.diffId, `sha256:${createHash('sha256').update(tar).digest('hex')}`, `${format}: diff_id is the tar's sha256`);
    await assertMatchesGnuTar(tar, entries, contents, `GNU tar --format=${format}`);
    const odd = entries.find((e) => e.pathBytes !== undefined);
    assert.ok(odd, `${format}: the non-UTF-8 name keeps its bytes`);
    assert.deepEqual([...odd.pathBytes!], [...Buffer.from('a/'), 0x6e, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]);
    const file = entries.find((e) => e.path === 'a/b/file')!;
    assert.equal(file.mtimeSec, 1_600_000_000);
    if (format === 'posix') assert.ok(Math.abs(file.mtimeNsec - 123_456_000) < 1000, `posix mtime nsec ${file.mtimeNsec}`);
    assert.equal(entries.find((e) => e.path === 'a/long-link')?.linkTarget, `/${'t'.repeat(150)}/${'u'.repeat(150)}`);
  }
});

test('the same layer as plain tar, gzip and zstd (CLI) gives the same diff_id and files', async () => {
  const tar = await gnuTar(await buildGnuTarSource(), 'posix');
  const results = [];
  for (const [kind, blob] of [['plain', tar], ['gzip', gzipSync(tar)], ['zstd', zstdCompress(tar)]] as const) {
    const dir = await tmpDir(`vmimg-flat-${kind}-`);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const r = await flattenAndRead(Readable.from([blob]), dir, { digest });
    assert.equal(r.info.digest, digest, kind);
    results.push(r);
  }
  for (const r of results.slice(1)) {
    assert.equal(r.info.diffId, results[0]!.info.diffId);
    assert.deepEqual(r.entries, results[0]!.entries);
    assert.ok(r.contents.equals(results[0]!.contents));
  }
});

test('hazard: a corrupt byte in the blob is ERR_DIGEST_MISMATCH and leaves nothing behind', async () => {
  ({ layers } = await buildRichImage());
  const layer = layers[1]!;
  const blob = readFileSync(layer.path);
  const cases: [string, Buffer, { digest?: string; diffId?: string }][] = [
    ['gzip byte flipped mid-stream', Buffer.from(blob), { digest: layer.digest }],
    ['wrong expected digest', blob, { digest: `sha256:${'0'.repeat(64)}` }],
    ['wrong expected diff_id', blob, { diffId: `sha256:${'0'.repeat(64)}` }],
  ];
  cases[0]![1][Math.floor(blob.length / 2)]! ^= 0x01;
  const plain = tarBytes(blob);
  const data = plain.indexOf(Buffer.from('shared by three names'));
  assert.ok(data > 0);
  plain[data] ^= 0x20;
  cases.push(['plain tar file byte flipped', plain, { diffId: layer.diffId }]);
  for (const [what, bytes, opts] of cases) {
    const dir = await tmpDir('vmimg-flat-bad-');
    await assert.rejects(
      flattenAndRead(Readable.from([bytes.subarray(0, 70000), bytes.subarray(70000)]), dir, opts),
      (err: Error) => isVmimgError(err, 'ERR_DIGEST_MISMATCH') || assert.fail(`${what}: ${String(err)}`),
    );
    assert.deepEqual(readdirSync(dir), [], `${what}: nothing committed, no temp files`);
  }
});

test('hazard: a conversion aborted midway leaves no .idx (nor temp files) and says ERR_ABORTED', async () => {
  ({ layers } = await buildRichImage());
  const dir = await tmpDir('vmimg-flat-abort-');
  const controller = new AbortController();
  let sent = 0;
  const slow = new Readable({
    read() {
      // Feed the big rich layer in small pieces; abort once conversion is well under way.
      const blob = readFileSync(layers[1]!.path);
      if (sent >= blob.length) return void this.push(null);
      if (sent > 2_000_000) controller.abort();
      setImmediate(() => this.push(blob.subarray(sent, (sent += 65536))));
    },
  });
  await assert.rejects(flattenLayer(slow, { dir, signal: controller.signal }), (err: Error) => isVmimgError(err, 'ERR_ABORTED'));
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(slow.destroyed, true, 'the source is released');
});

test('hazard: a conversion killed with SIGKILL midway leaves no .idx, and the next run succeeds', async () => {
  ({ layers } = await buildRichImage());
  const layer = layers[1]!;
  const dir = await tmpDir('vmimg-flat-kill-');
  const node = childNode(import.meta.url);
  const flattenUrl = new URL(`../../src/layer/flatten${node.ext}`, import.meta.url).href;
  // The child feeds the blob slowly and reports progress; we kill it once it is under way.
  const code = `
    import { flattenLayer } from ${JSON.stringify(flattenUrl)};
    import { readFileSync } from 'node:fs';
    import { Readable } from 'node:stream';
    const blob = readFileSync(${JSON.stringify(layer.path)});
    let sent = 0;
    const src = new Readable({ read() {
      if (sent > 1_000_000) process.stdout.write('busy\\n');
      setTimeout(() => this.push(sent >= blob.length ? null : blob.subarray(sent, (sent += 65536))), 5);
    } });
    await flattenLayer(src, { dir: ${JSON.stringify(dir)} });`;
  const child = spawn(process.execPath, [...node.execArgv, '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`child exited early with ${c}`)));
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const left = readdirSync(dir);
  assert.ok(left.length > 0 && left.every((n) => n.startsWith('.tmp-')), `only temp files are left: ${left.join(', ')}`);
  assert.equal(await hasLayer(dir, layer.diffId), undefined);
  const info = await flattenLayer(createReadStream(layer.path), { dir, expectedDiffId: layer.diffId });
  assert.equal(info.diffId, layer.diffId);
});

test('an already flattened layer is returned without reading the source; hasLayer sees only complete pairs', async () => {
  ({ layers } = await buildRichImage());
  const dir = await tmpDir('vmimg-flat-again-');
  const layer = layers[2]!;
  assert.equal(await hasLayer(dir, layer.diffId), undefined);
  const first = await flattenLayer(createReadStream(layer.path), { dir, expectedDiffId: layer.diffId });
  assert.deepEqual(await hasLayer(dir, layer.diffId), first);
  const untouched = new Readable({ read() { assert.fail('source must not be read'); } });
  assert.deepEqual(await flattenLayer(untouched, { dir, expectedDiffId: layer.diffId }), first);
  assert.equal(untouched.destroyed, true);
  writeFileSync(first.contentsPath, 'short');
  assert.equal(await hasLayer(dir, layer.diffId), undefined, 'a .contents of the wrong size is not a layer');
  mkdirSync(join(dir, 'x'));
});
