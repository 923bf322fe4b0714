/**
 * util/writeback: a file being written is fdatasynced every `every` bytes, one sync at a time and never
 * awaited by the writer; `settle` waits for the one under way and reports its failure (a real one:
 * Linux refuses fdatasync on /dev/null with EINVAL).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Writeback } from '../../src/util/writeback.js';
import { tmpDir } from '../helpers/tools.js';

describe('Writeback', () => {
  it('syncs after every `every` bytes written, one at a time, and settles', async () => {
    const fh = await open(join(await tmpDir(), 'f'), 'w');
    let calls = 0;
    const datasync = fh.datasync.bind(fh);
    fh.datasync = () => {
      calls++;
      return datasync();
    };
    try {
      const wb = new Writeback(fh, 1 << 20);
      const chunk = Buffer.alloc(256 << 10, 7);
      let end = 0;
      for (let i = 0; i < 3; i++, end += chunk.length) await fh.write(chunk, 0, chunk.length, end);
      wb.wrote(end); // 768 KiB: below `every`
      assert.equal(calls, 0);
      await fh.write(chunk, 0, chunk.length, end);
      end += chunk.length;
      wb.wrote(end); // 1 MiB: a sync starts
      wb.wrote(end); // and no second one while it runs, nor for the same bytes
      assert.equal(calls, 1);
      await wb.settle();
      wb.wrote(end + (512 << 10)); // half of `every` since the last: none
      assert.equal(calls, 1);
      wb.wrote(end + (1 << 20));
      assert.equal(calls, 2);
      await wb.settle();
    } finally {
      await fh.close();
    }
  });

  it("reports a failed sync at settle, not at the write that started it", async () => {
    const fh = await open('/dev/null', 'r+');
    try {
      const wb = new Writeback(fh, 1);
      assert.doesNotThrow(() => wb.wrote(1));
      await assert.rejects(wb.settle(), { code: 'EINVAL' });
    } finally {
      await fh.close();
    }
  });
});
