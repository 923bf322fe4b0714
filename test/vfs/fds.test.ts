// ContainerFS's open files: none at open(), one per layer once read (however many reads), none after close().
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { ContainerFS } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

/** Open fds of this process naming a file below `dir` (counting every fd flaked: the runtime opens and closes its own). */
function openFdsBelow(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

test('contents files open lazily, one fd per layer shared by all reads, all closed by close()', async () => {
  const root = tmpDirSync('vmimg-vfs-fds-');
  const layers = [0, 1, 2].map((i) => layer().file(`f${i}`, `layer ${i} `.repeat(1000)).build(root));
  const openFds = (): number => openFdsBelow(root);
  const fs = await ContainerFS.open(layers);
  assert.equal(openFds(), 0, 'open() opens no .contents file');
  for (let round = 0; round < 5; round++) await fs.read(fs.resolvePath('/f0'), round * 10, 10);
  assert.equal(openFds(), 1, 'reads of one layer share one fd');
  await Promise.all([1, 2, 1, 2].map((i) => fs.readFile(`/f${i}`)));
  await fs.readFile('/f0');
  assert.equal(openFds(), 3, 'one fd per layer');
  await fs.close();
  assert.equal(openFds(), 0, 'close() closes them all');
});
