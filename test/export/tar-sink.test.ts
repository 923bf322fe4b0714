// The tar sink's ring (src/export/tar-sink.ts) with a reader that calls back late: a body 1 MiB larger
// than the ring, less one block, leaves 512 bytes of room once its last piece is in (room comes back in
// whole 1 MiB writes), so the archive's 1024 end-of-archive bytes must wait for room after the last
// entry is in. The body's pieces are claimed as reads are and filled in reverse order within each
// window of four, so bytes after an unfilled claim must wait for it. The sink still writes every byte,
// in order, before it ends `out` (once it ended too early and wrote the last blocks after `out.end()`).
// GNU tar reads the archive back whole.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { encodeHeader } from '../../src/export/tar-headers.js';
import { TAR_RING_BYTES, TarSink, WRITE_BYTES, type Claim } from '../../src/export/tar-sink.js';
import { sharedHashPool } from '../../src/util/hash-pool.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

test('a body that leaves the ring one block short, filled out of order, and the end-of-archive blocks all reach a slow reader before it is ended', async () => {
  requireTools(['tar']);
  const body = Buffer.alloc(TAR_RING_BYTES + (1 << 20) - 512);
  for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i); // not all zeros: order shows
  const received: Buffer[] = [];
  let endedAt = -1;
  const slowReader = new Writable({
    write(chunk: Buffer, _enc, cb) {
      received.push(Buffer.from(chunk)); // a copy: the ring is reused once we call back
      setTimeout(cb, 20);
    },
    final(cb) {
      endedAt = received.length;
      cb();
    },
  });
  await sharedHashPool().digest(Buffer.alloc(1)); // the worker running: the body's digest comes in well under 100 ms
  const sink = new TarSink(slowReader, undefined);
  const file = { name: '/big', expected: createHash('sha256').update(body).digest('hex') };
  const place = async (n: number): Promise<void> => {
    if (!sink.fits(n)) await sink.room(n);
  };
  const header = encodeHeader({ name: './big', type: 'file', size: body.length, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
  await place(header.length);
  sink.copy(header);
  let window: { claim: Claim; from: number }[] = [];
  const fill = (): void => {
    for (const { claim, from } of window.reverse()) {
      let at = from;
      for (const v of claim.views) at += body.copy(v, 0, at, at + v.length);
      sink.filled(claim);
    }
    window = [];
  };
  for (let at = 0; at < body.length; ) {
    const n = Math.min(WRITE_BYTES, body.length - at);
    if (!sink.fits(n)) fill(); // what holds the ring back must be filled before room can come
    await place(n);
    const claim = sink.claim(n);
    sink.body(claim.start, claim.end, file, at + n === body.length);
    window.push({ claim, from: at });
    if (window.length === 4) fill();
    at += n;
  }
  fill();
  await place(1024); // a whole number of blocks: no padding
  sink.zeros(1024);
  await sink.end();

  const tar = Buffer.concat(received);
  assert.equal(endedAt, received.length, 'nothing was written after the reader was ended');
  assert.equal(tar.length, 512 + body.length + 1024, 'header, body and the two end-of-archive blocks');
  assert.ok(tar.subarray(512, 512 + body.length).equals(body), 'the body in order');
  assert.ok(tar.subarray(512 + body.length).equals(Buffer.alloc(1024)), 'the archive ends with two zero blocks');
  const dir = await tmpDir('vmimg-tar-sink-');
  writeFileSync(join(dir, 'a.tar'), tar);
  assert.equal((await run('tar', ['-tvf', join(dir, 'a.tar')])).includes(`${body.length}`), true, 'GNU tar lists the file with its size');
});
