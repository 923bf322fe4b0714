/** The limits' pieces: sizes, the .idx size shared by writer and reader, chunked /etc/passwd reads. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { encodeIndex, readIndexFile } from '../../src/layer/index-format.js';
import { LIMITS } from '../../src/layer/index-format.js';
import { parseSize, resolveLimits } from '../../src/layer/limits.js';
import { EntryType, S_IFREG, type IndexEntry } from '../../src/layer/entry.js';
import { resolveUser } from '../../src/image/runtime-config.js';
import { isVmimgError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tools.js';

describe('parseSize', () => {
  for (const [text, want] of [['4096', 4096], ['64G', 64 * 2 ** 30], ['512MiB', 512 * 2 ** 20], ['1.5k', 1536], ['2t', 2 * 2 ** 40]] as const) {
    it(`"${text}" → ${want}`, () => assert.equal(parseSize(text, 'x'), want));
  }
  for (const text of ['', 'lots', '-1', '0', '1Q', '1e400']) {
    it(`"${text}" is refused`, () => assert.throws(() => parseSize(text, '--max-layer-size'), { code: 'ERR_INVALID_ARGUMENT' }));
  }
  it('limits must be positive', () => assert.throws(() => resolveLimits({ maxLayerEntries: 0 }), { code: 'ERR_INVALID_ARGUMENT' }));
});

describe('the .idx size limit is the same for writer and reader', () => {
  it('encodeIndex refuses an index over LIMITS.indexBytes before allocating it', () => {
    const value = Buffer.alloc(LIMITS.xattrValue); // shared by every entry: the input itself stays small
    const xattrs: Record<string, Buffer> = {};
    for (let i = 0; i < 15; i++) xattrs[`user.x${i}`] = value;
    const entry = (i: number): IndexEntry => ({
      type: EntryType.File, path: `f${i}`, mode: S_IFREG | 0o644, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0,
      size: 0, offset: 0, devMajor: 0, devMinor: 0, xattrs,
    });
    const entries = Array.from({ length: Math.ceil(LIMITS.indexBytes / (15 * LIMITS.xattrValue)) + 1 }, (_, i) => entry(i));
    assert.throws(() => encodeIndex({ diffId: `sha256:${'0'.repeat(64)}`, contentsSize: 0 }, entries), (err: Error) => {
      assert.ok(isVmimgError(err, 'ERR_TOO_LARGE'), String(err));
      assert.match(err.message, /over the 1073741824-byte limit/);
      return true;
    });
  });

  it('readIndexFile refuses a larger file without reading it', async () => {
    const path = join(await tmpDir('vmimg-idx-'), 'big.idx');
    const fd = openSync(path, 'w');
    ftruncateSync(fd, LIMITS.indexBytes + 1); // sparse: nothing to read in a hurry either way
    closeSync(fd);
    await assert.rejects(readIndexFile(path), (err: Error) => isVmimgError(err, 'ERR_INVALID_INDEX') && /over the 1073741824-byte limit/.test(err.message));
  });
});

describe('resolveUser reads /etc/passwd in chunks, up to a cap', () => {
  /** A reader over in-memory files that counts the bytes it hands out. */
  function reader(files: Record<string, Buffer>): { read: Parameters<typeof resolveUser>[1]; bytes: () => number } {
    let bytes = 0;
    return {
      read: async (path, offset, length) => {
        const f = files[path];
        if (f === undefined) return undefined;
        const out = f.subarray(offset, offset + length);
        bytes += out.length;
        return out;
      },
      bytes: () => bytes,
    };
  }
  const filler = (n: number): Buffer => Buffer.from(`${'#'.repeat(n - 1)}\n`);

  it('finds a line that straddles a 64 KiB chunk boundary', async () => {
    const r = reader({ '/etc/passwd': Buffer.concat([filler(65536 - 10), Buffer.from('app:x:1000:1001::/:/bin/sh\n')]) });
    assert.deepEqual(await resolveUser('app', r.read), { uid: 1000, gid: 1001 });
  });

  it('stops reading at the first match', async () => {
    const r = reader({ '/etc/passwd': Buffer.concat([Buffer.from('app:x:7:8::/:/bin/sh\n'), Buffer.alloc(64 * 2 ** 20)]) });
    assert.deepEqual(await resolveUser('app', r.read), { uid: 7, gid: 8 });
    assert.ok(r.bytes() <= 64 * 1024, `read ${r.bytes()} bytes`);
  });

  it('a file with no match past the cap is ERR_TOO_LARGE; one ending at the cap is just unknown', async () => {
    const cap = 1 << 20;
    const big = reader({ '/etc/passwd': Buffer.alloc(cap * 4) });
    await assert.rejects(resolveUser('app', big.read, cap), (err: Error) => isVmimgError(err, 'ERR_TOO_LARGE') && /maxUserFileBytes/.test(err.hint ?? ''));
    assert.ok(big.bytes() <= cap + 1);
    const exact = reader({ '/etc/passwd': filler(cap) });
    await assert.rejects(resolveUser('app', exact.read, cap), { code: 'ERR_UNKNOWN_USER' });
  });

  it('the last line needs no newline; groups are read the same way', async () => {
    const r = reader({ '/etc/passwd': Buffer.from('app:x:5:6::/:/bin/sh'), '/etc/group': Buffer.from('wheel:x:10:\nstaff:x:50:') });
    assert.deepEqual(await resolveUser('app:staff', r.read), { uid: 5, gid: 50 });
  });
});
