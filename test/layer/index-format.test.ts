import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeIndex, decodeIndex, readIndexFile, HEADER_SIZE } from '../../src/layer/index-format.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';
import { tableCrc32, crc32 } from '../../src/layer/crc32.js';
import { isVmimgError } from '../../src/errors.js';

const base = { uid: 0, gid: 0, mtimeSec: 1700000000, mtimeNsec: 0, size: 0, offset: 0, devMajor: 0, devMinor: 0 };
const header = {
  digest: `sha256:${'1'.repeat(64)}`,
  diffId: `sha256:${'2'.repeat(64)}`,
  contentsSize: 8192 + 5,
  compressedSize: 1234,
  tarSize: 10240,
};
const sample: IndexEntry[] = [
  { ...base, type: EntryType.Dir, path: '', mode: 0o040755 },
  { ...base, type: EntryType.Dir, path: 'etc', mode: 0o041777, uid: 1000, gid: 4294967294 },
  { ...base, type: EntryType.File, path: 'etc/passwd', mode: 0o104755, size: 5, offset: 8192, sha256: 'ab'.repeat(32), mtimeSec: -5, mtimeNsec: 999999999, tarOffset: 1536 },
  { ...base, type: EntryType.File, path: 'holes', mode: 0o100644, size: 4, offset: 0, sha256: 'ef'.repeat(32), tarOffset: 3072, tarSparse: { headerOffset: 2048, storedSize: 1024 } },
  { ...base, type: EntryType.File, path: 'empty', mode: 0o100600, sha256: 'e3'.repeat(32), mtimeSec: 2 ** 40 },
  { ...base, type: EntryType.Symlink, path: 'tab\there\nnewline', mode: 0o120777, linkTarget: '../../x/ünï' },
  { ...base, type: EntryType.Symlink, path: 'b\udcff\udcfe', pathBytes: Buffer.from([0x62, 0xff, 0xfe]), mode: 0o120777, linkTarget: '\udcc3', linkTargetBytes: Buffer.from([0xc3]), xattrs: { 'user.\udce4': Buffer.from('raw name') } },
  { ...base, type: EntryType.Hardlink, path: 'etc/passwd-', mode: 0o100644, linkTarget: 'etc/passwd', size: 5, offset: 8192, tarOffset: 1536 },
  { ...base, type: EntryType.Hardlink, path: 'lib/so', mode: 0o100644, linkTarget: 'lib/so.1', lowerLink: true },
  { ...base, type: EntryType.CharDevice, path: 'dev/null', mode: 0o020666, devMajor: 1, devMinor: 3 },
  { ...base, type: EntryType.BlockDevice, path: 'dev/sda', mode: 0o060660, devMajor: 8, devMinor: 0 },
  { ...base, type: EntryType.Fifo, path: 'run/fifo', mode: 0o010644 },
  { ...base, type: EntryType.Whiteout, path: 'usr/gone', mode: 0o100000 },
  { ...base, type: EntryType.Opaque, path: 'var', mode: 0o100000 },
  { ...base, type: EntryType.File, path: 'bin/ping', mode: 0o100755, sha256: 'cd'.repeat(32), xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0xff]), 'user.empty': Buffer.alloc(0) } },
];

/** Compare ignoring optional keys that are present-but-undefined on one side. */
function strip(e: IndexEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) if (v !== undefined) out[k] = k === 'xattrs' ? { ...(v as object) } : v;
  return out;
}

async function expectInvalid(buf: Buffer, what: string): Promise<void> {
  try {
    decodeIndex(buf);
  } catch (err) {
    assert.ok(isVmimgError(err, 'ERR_INVALID_INDEX'), `${what}: expected ERR_INVALID_INDEX, got ${String(err)}`);
    return;
  }
  assert.fail(`${what}: decoded without error`);
}

test('round-trips every entry type, raw names, xattrs and (version 2) tar offsets', () => {
  const buf = encodeIndex(header, sample);
  const { header: h, entries } = decodeIndex(buf);
  assert.deepEqual(h, { ...header, version: 2, entryCount: sample.length });
  assert.deepEqual(entries.map(strip), sample.map((e) => strip({ tarOffset: 0, ...e })));
  assert.deepEqual(entries[6]!.pathBytes, Buffer.from([0x62, 0xff, 0xfe]));
  assert.equal(entries[2]!.pathBytes, undefined);
  assert.ok(buf.includes(Buffer.from('user.\xe4raw name', 'latin1')), 'a raw xattr name is stored as its bytes');
});

test('version 1 files (no tar offsets) still decode', () => {
  const { header: h, entries } = decodeIndex(encodeIndex(header, sample, 1));
  assert.equal(h.version, 1);
  assert.deepEqual(entries.map(strip), sample.map((e) => strip({ ...e, tarOffset: undefined, tarSparse: undefined, lowerLink: undefined })));
});

test('hazard: version 2 tar ranges are checked (alignment, inside the tar, sparse only on files)', () => {
  const file = sample[2]!;
  const cases: Array<[string, IndexEntry, RegExp]> = [
    ['misaligned tar offset', { ...file, tarOffset: 1537 }, /tar range/],
    ['past the tar', { ...file, tarOffset: 10240 }, /tar range/],
    ['sparse header after the data', { ...sample[3]!, tarSparse: { headerOffset: 3072, storedSize: 0 } }, /sparse/],
    ['sparse data past the tar', { ...sample[3]!, tarSparse: { headerOffset: 2048, storedSize: 10240 } }, /sparse/],
    ['a directory with a tar offset', { ...sample[1]!, tarOffset: 512 }, /tar offset/],
    ['a symlink flagged sparse', { ...sample[5]!, tarSparse: { headerOffset: 0, storedSize: 0 } }, /sparse flag/],
    ['a file flagged as a lower link', { ...sample[2]!, lowerLink: true }, /lower-link flag/],
  ];
  for (const [what, e, message] of cases) {
    assert.throws(() => decodeIndex(encodeIndex(header, [e])), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && message.test(err.message), what);
  }
});

test('a header without the compressed digest decodes without one', () => {
  const { digest: _d, ...noDigest } = header;
  const { header: h } = decodeIndex(encodeIndex(noDigest, sample));
  assert.equal(h.digest, undefined);
  assert.equal(h.diffId, header.diffId);
});

test('an empty index round-trips', () => {
  const { header: h, entries } = decodeIndex(encodeIndex({ ...header, contentsSize: 0 }, []));
  assert.equal(h.entryCount, 0);
  assert.deepEqual(entries, []);
});

test('the JS CRC-32 fallback agrees with zlib', () => {
  const data = Buffer.from('The quick brown fox jumps over the lazy dog');
  assert.equal(tableCrc32(data), 0x414fa339);
  assert.equal(crc32(data), 0x414fa339);
});

test('hazard: truncation at every offset is ERR_INVALID_INDEX', async () => {
  const buf = encodeIndex(header, sample);
  for (let n = 0; n < buf.length; n++) await expectInvalid(buf.subarray(0, n), `truncated to ${n}`);
  await expectInvalid(Buffer.concat([buf, Buffer.from([0])]), 'trailing byte');
});

test('hazard: every single bit flip is ERR_INVALID_INDEX', async () => {
  const buf = encodeIndex(header, sample);
  for (let i = 0; i < buf.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = Buffer.from(buf);
      copy[i]! ^= 1 << bit;
      await expectInvalid(copy, `bit ${bit} of byte ${i}`);
    }
  }
});

test('hazard: random garbage and foreign files are ERR_INVALID_INDEX', async () => {
  let seed = 42;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.alloc(Math.floor(rand() * 400));
    for (let j = 0; j < junk.length; j++) junk[j] = Math.floor(rand() * 256);
    if (i % 2 === 0 && junk.length >= 8) junk.write('VMIMGIDX', 0, 'latin1');
    await expectInvalid(junk, `junk ${i}`);
  }
  await expectInvalid(Buffer.from('{"schemaVersion":2}'), 'json');
  await expectInvalid(Buffer.alloc(0), 'empty');
});

test('hazard: another format version is refused with a clear message', () => {
  const buf = encodeIndex(header, sample);
  buf.writeUInt16LE(3, 8);
  assert.throws(() => decodeIndex(buf), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && /version 3/.test(err.message));
});

test('hazard: consistent checksums do not hide a bad structure', () => {
  // Rewrite an entry's offset to point past .contents and fix both CRCs: the bounds check must still fire.
  const buf = encodeIndex(header, sample);
  const third = HEADER_SIZE + 72 * 2; // entries 0 and 1 have no sha/link/xattrs and paths '' and 'etc'
  buf.writeUInt32LE(0x10000, third + 3 + 48);
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_SIZE)), 120);
  buf.writeUInt32LE(crc32(buf.subarray(0, 124)), 124);
  assert.throws(() => decodeIndex(buf), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && /outside|misaligned/.test(err.message));
});

test('hazard: a hardlink whose content range is outside .contents or misaligned is refused', () => {
  const file = sample[2]!;
  const cases: Array<[string, Partial<IndexEntry>]> = [
    ['offset past the end', { offset: 0x10000 }],
    ['range running past the end', { size: 4096 }],
    ['misaligned offset', { offset: 8193, size: 1 }],
  ];
  for (const [what, patch] of cases) {
    const link: IndexEntry = { ...base, type: EntryType.Hardlink, path: 'x', mode: 0o100644, linkTarget: file.path, size: 5, offset: 8192, ...patch };
    assert.throws(() => decodeIndex(encodeIndex(header, [file, link])), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && /entry 1 .*(outside|misaligned)/.test(err.message), what);
  }
});

test('hazard: types without content must have size and offset 0', () => {
  const types = [EntryType.Dir, EntryType.Symlink, EntryType.CharDevice, EntryType.BlockDevice, EntryType.Fifo, EntryType.Whiteout, EntryType.Opaque];
  for (const type of types) {
    for (const patch of [{ size: 1 }, { offset: 4096 }]) {
      const e: IndexEntry = { ...base, type, path: 'x', mode: 0o100644, linkTarget: type === EntryType.Symlink ? 'y' : undefined, ...patch };
      assert.throws(() => decodeIndex(encodeIndex(header, [e])), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && /non-zero size or offset/.test(err.message), `type ${type} ${JSON.stringify(patch)}`);
    }
  }
});

test('readIndexFile names the file; a missing file is ERR_NOT_FOUND', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmimg-idx-'));
  try {
    const good = join(dir, 'good.idx');
    await writeFile(good, encodeIndex(header, sample));
    assert.equal((await readIndexFile(good)).entries.length, sample.length);
    const bad = join(dir, 'bad.idx');
    await writeFile(bad, Buffer.from('VMIMGIDX'));
    await assert.rejects(readIndexFile(bad), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && err.message.includes(bad));
    await assert.rejects(readIndexFile(join(dir, 'none.idx')), (err: Error) => isVmimgError(err, 'ERR_NOT_FOUND'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
