/**
 * scanRecords checks the common `.idx` record inline and hands everything else to checkRecord; the direct
 * pack's scan (src/vfs/direct-scan.ts) checks in its own pass. Both must accept exactly what checkRecord
 * accepts and fail with its words: thousands of records with one
 * field byte changed (a layer written by python3's tarfile, flattened) are scanned both ways.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { flattenLayer } from '../../src/layer/flatten.js';
import { HEADER_SIZE, scanIndex } from '../../src/layer/index-format.js';
import { ENTRY_FIXED_SIZE } from '../../src/layer/index-records.js';
import { checkRecord, scanRecords, type RecordBounds } from '../../src/layer/record-checks.js';
import { LayerScan } from '../../src/vfs/direct-scan.js';
import { py, pyLayerTar } from '../helpers/pyimage.js';
import { tmpDir } from '../helpers/tools.js';

/** The records scanned one checkRecord call each: their starts, or the error's message. */
function reference(buf: Buffer, count: number, b: RecordBounds): string {
  const starts: number[] = [];
  try {
    let at = HEADER_SIZE;
    for (let i = 0; i < count; i++) {
      starts.push(at);
      at = checkRecord(buf, at, buf.length, b, i);
    }
    return [...starts, at].join(',');
  } catch (err) {
    return (err as Error).message;
  }
}

/** scanRecords, or (`direct`) the direct pack's scan, which checks the records in its own pass. */
function fast(buf: Buffer, count: number, b: RecordBounds, direct = false): string {
  const starts = new Uint32Array(count + 1);
  try {
    (direct ? new LayerScan().records : scanRecords)(buf, HEADER_SIZE, count, b, starts);
    return [...starts].join(',');
  } catch (err) {
    return (err as Error).message;
  }
}

test('scanRecords accepts and refuses exactly what checkRecord does, one changed byte at a time', async () => {
  const tar = await pyLayerTar([
    py.dir('d/'), py.file('d/f', 'data'), py.file('d/empty'), py.hard('d/h', 'd/f'), py.sym('d/s', 'f'),
    { name: 'dev/null', type: 'chr', major: 1, minor: 3 }, { name: 'fifo', type: 'fifo' }, py.file('d/.wh.x'), py.file('o/.wh..wh..opq'),
  ]);
  const info = await flattenLayer(Readable.from([tar]), { dir: await tmpDir('vmimg-scan-records-') });
  const good = scanIndex(readFileSync(info.indexPath));
  const count = good.header.entryCount;
  const bounds: RecordBounds = { version: good.version, contentsSize: good.header.contentsSize, tarSize: good.header.tarSize };
  assert.equal(fast(good.buf, count, bounds), reference(good.buf, count, bounds));
  assert.equal(fast(good.buf, count, bounds, true), reference(good.buf, count, bounds));
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const interesting = [0, 1, 2, 3, 4, 7, 8, 9, 10, 0x7f, 0x80, 0xfe, 0xff];
  let refused = 0;
  for (let trial = 0; trial < 4000; trial++) {
    const buf = Buffer.from(good.buf);
    const r = rand(count);
    const at = good.starts[r]! + rand(ENTRY_FIXED_SIZE[good.version] + 8);
    buf[at] = trial % 2 === 0 ? interesting[rand(interesting.length)]! : rand(256);
    const want = reference(buf, count, bounds);
    if (!/^\d/.test(want)) refused++;
    assert.equal(fast(buf, count, bounds), want, `record ${r}, byte ${at - good.starts[r]!} = ${buf[at]}`);
    assert.equal(fast(buf, count, bounds, true), want, `direct scan: record ${r}, byte ${at - good.starts[r]!} = ${buf[at]}`);
  }
  assert.ok(refused > 1000, `the changes reach the checks (${refused} refused)`);
});
