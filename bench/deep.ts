/**
 * Deep trees (issue 9 item 9): the tar and initramfs exports of a tree 4 000 and 8 000 levels deep
 * (one file at the bottom, written by python's tarfile), side by side. Export work must be linear in
 * the total bytes of the paths (d² for depth d): time per MiB of path bytes stays flat when the depth
 * doubles (a quadratic-per-entry step, the old ustar prefix split, made it grow with the depth).
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportInitramfs, exportTar } from '../src/export/index.js';
import { flattenLayer } from '../src/layer/flatten.js';
import { ContainerFS } from '../src/vfs/index.js';
import { tmpDir } from '../test/helpers/tools.js';
import { sideBySide } from './util.js';

async function deepImage(depth: number, work: string): Promise<ContainerFS> {
  const tar = join(work, `deep${depth}.tar`);
  execFileSync('python3', ['-c', `
import io, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo('d/' * ${depth - 1} + 'leaf'); i.size = 3; t.addfile(i, io.BytesIO(b'hi\\n'))
`, tar]);
  const dir = join(work, `img${depth}`);
  const info = await flattenLayer(createReadStream(tar), { dir });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ layers: [info.diffId] }));
  return ContainerFS.open(dir);
}

const work = await tmpDir('vmimg-bench-deep-');
const rate: Record<string, number> = {};
for (const depth of [4000, 8000]) {
  const fs = await deepImage(depth, work);
  const pathMiB = (depth * depth) / 2 ** 20; // Σ 2i bytes for i ≤ depth
  const t = await sideBySide({
    tar: () => exportTar(fs, createWriteStream('/dev/null')),
    cpio: () => exportInitramfs(fs, createWriteStream('/dev/null'), { init: false, gzip: false }),
  });
  for (const [k, ms] of Object.entries(t)) rate[`${k}${depth}`] = ms / pathMiB;
  console.log(`deep tree ${depth} levels (${pathMiB.toFixed(0)} MiB of paths): tar ${t.tar!.toFixed(0)} ms, initramfs ${t.cpio!.toFixed(0)} ms`);
  await fs.close();
}
console.log(
  `deep tree, ms per MiB of path bytes at 8000 vs 4000 levels: tar ${(rate.tar8000! / rate.tar4000!).toFixed(2)}×, ` +
    `initramfs ${(rate.cpio8000! / rate.cpio4000!).toFixed(2)}× (linear: about 1×)`,
);
