// The tar export waits for its reader (attack R08's 1.8 GB RSS: headers of a deep tree piled up in
// tar-stream's pack). A wide and a deep tree of directories with long names go to a slow reader; at
// every entry the walk may be ahead of what the reader took by a bounded number of bytes, whatever the
// tree's size (the tree's headers are several times that bound). No timings: the lag is counted in
// bytes. GNU tar then lists the whole archive.
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { exportTar } from '../../src/export/index.js';
import { TAR_RING_BYTES } from '../../src/export/tar-sink.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

const WIDE = 10_000;
const DEEP = 400;
const NAME = 'n'.repeat(300);
/** Each entry's name is over ustar's 256 bytes: a pax header block, its ≥ 301-byte body, the header. */
const MIN_ENTRY_BYTES = 3 * 512;
/**
 * The export's ring (bytes handed to the reader and not yet called back for), the 256 entries walked
 * ahead of the one being written, tar-stream's buffer (16 KiB) and one entry, with room to spare.
 */
const MAX_LAG = TAR_RING_BYTES + 256 * MIN_ENTRY_BYTES + 256 * 1024;

test('tar export keeps a bounded lead over a slow reader (wide and deep trees of long names)', async () => {
  requireTools(['tar']);
  const dir = await tmpDir('vmimg-tar-bp-');
  const b = layer();
  for (let i = 0; i < WIDE; i++) b.dir(`${NAME}${i}`);
  let deep = 'deep';
  b.dir(deep);
  for (let i = 0; i < DEEP; i++) b.dir((deep = `${deep}/${NAME.slice(0, 40)}${i}`));
  b.file(`${deep}/leaf`, 'at the bottom\n');
  const fs = ContainerFS.fromLayers([b.build(dir)]);

  let walked = 0;
  let received = 0;
  let maxLag = 0;
  const getattr = fs.getattr.bind(fs);
  fs.getattr = (ino) => {
    walked++;
    maxLag = Math.max(maxLag, walked * MIN_ENTRY_BYTES - received);
    return getattr(ino);
  };
  const file = join(dir, 'root.tar');
  const fd = openSync(file, 'w');
  const slowReader = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      writeSync(fd, chunk);
      received += chunk.length;
      setImmediate(cb); // one chunk per event-loop turn: the export runs far ahead unless it waits
    },
  });
  const r = await exportTar(fs, slowReader);
  closeSync(fd);
  await fs.close();

  const total = WIDE + DEEP + 3; // root, deep, the chain, the leaf
  assert.equal(r.entries, total);
  assert.ok(received > total * MIN_ENTRY_BYTES, `the tar holds every header (${received} bytes)`);
  assert.ok(maxLag <= MAX_LAG, `the walk ran ${maxLag} bytes ahead of the reader (bound ${MAX_LAG})`);
  const listed = (await run('tar', ['-tf', file])).trim().split('\n');
  assert.equal(listed.length, total, 'GNU tar lists every entry');
  assert.ok(listed.includes(`./${deep}/leaf`));
});
