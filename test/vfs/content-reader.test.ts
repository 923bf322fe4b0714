// ContainerFS reads file bytes through a ContentReader per layer (issue 12): the local `.contents`
// file by default, any reader handed in as a layer's `content` (a remote or lazy backend) otherwise.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ContainerFS, LayeredContainerFS, type ContentReader } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

const dir = tmpDirSync('vmimg-vfs-content-');
const big = randomBytes(2 * 4096 + 77);

/** A reader over bytes in memory that records every call, as a remote backend would see them. */
class RecordingReader implements ContentReader {
  readonly calls: [number, number][] = [];
  closed = false;
  constructor(private readonly bytes: Buffer) {}
  async readInto(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    this.calls.push([position, length]);
    if (position + length > this.bytes.length) throw new Error('past the end');
    buffer.set(this.bytes.subarray(position, position + length), offset);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

test('a layer read through a handed-in ContentReader gives the same bytes, and ContainerFS never closes it', async () => {
  const l = layer().file('a', 'hello').file('big', big).build(dir);
  const reader = new RecordingReader(readFileSync(l.contentsPath));
  const fs = ContainerFS.fromLayers([{ entries: l.entries, content: reader }]);
  assert.equal((await fs.readFile('/a')).toString(), 'hello');
  assert.deepEqual(await fs.readFile('/big', { verify: true }), big);
  const ino = fs.resolvePath('/big');
  assert.deepEqual(await fs.read(ino, 4000, 200), big.subarray(4000, 4200));
  assert.ok(reader.calls.some(([pos, len]) => len === 200 && pos % 4096 === 4000 % 4096), 'the range went to the reader');
  await fs.close();
  assert.equal(reader.closed, false);
});

test('readInto fills the caller\'s buffer at its offset and returns the bytes read, clamped at the end of the file', async () => {
  const fs = ContainerFS.fromLayers([layer().file('big', big).file('empty', '').dir('d').build(dir)]);
  const ino = fs.resolvePath('/big');
  const buf = Buffer.alloc(8192, 0xee);
  assert.equal(await fs.readInto(ino, buf, 10, 100, 5), 100);
  assert.deepEqual(buf.subarray(10, 110), big.subarray(5, 105));
  assert.equal(buf[9], 0xee);
  assert.equal(buf[110], 0xee);
  assert.equal(await fs.readInto(ino, buf, 0, 8192, big.length - 50), 50);
  assert.deepEqual(buf.subarray(0, 50), big.subarray(big.length - 50));
  assert.equal(await fs.readInto(ino, buf, 0, 10, big.length + 5), 0);
  assert.equal(await fs.readInto(fs.resolvePath('/empty'), buf, 0, 10, 0), 0);
  await assert.rejects(fs.readInto(ino, buf, 8190, 10, 0), { code: 'EINVAL' });
  await assert.rejects(fs.readInto(ino, buf, -1, 10, 0), { code: 'EINVAL' });
  await assert.rejects(fs.readInto(fs.resolvePath('/d'), buf, 0, 10, 0), { code: 'EISDIR' });
  await fs.close();
});

test('a file handle reads into the buffer it is given', async () => {
  const l = layer().file('big', big).build(dir);
  const reader = new RecordingReader(readFileSync(l.contentsPath));
  const fs = ContainerFS.fromLayers([{ entries: l.entries, content: reader }]);
  const fh = await fs.promises.open('/big');
  const buf = Buffer.alloc(1000);
  const r = await fh.read(buf, 100, 500, 3000);
  assert.equal(r.bytesRead, 500);
  assert.equal(r.buffer, buf);
  assert.deepEqual(buf.subarray(100, 600), big.subarray(3000, 3500));
  await fh.close();
  await fs.close();
});

test('layers stacked on a base mix readers: each layer reads from its own', async () => {
  const lower = layer().file('low', 'lower bytes').build(dir);
  const upper = layer().file('up', 'upper bytes').build(dir);
  const base = ContainerFS.fromLayers([lower]);
  const reader = new RecordingReader(readFileSync(upper.contentsPath));
  const fs = new LayeredContainerFS(base, [{ entries: upper.entries, content: reader }]);
  assert.equal((await fs.readFile('/low')).toString(), 'lower bytes');
  assert.equal((await fs.readFile('/up')).toString(), 'upper bytes');
  assert.equal(reader.calls.length, 1);
  await fs.close();
  await base.close();
});

test('a layer with neither a contentsPath nor a reader is refused', () => {
  assert.throws(() => ContainerFS.fromLayers([{ entries: [] }]), { code: 'ERR_INVALID_ARGUMENT' });
});
