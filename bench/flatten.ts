/**
 * flattenLayer vs `gzip -dc > /dev/null` on the same gzip tar, side by side.
 * Run: node --import tsx bench/flatten.ts [DIR_TO_TAR]   (default: this repo's node_modules)
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flattenLayer } from '../src/layer/flatten.js';

const src = process.argv[2] ?? join(process.cwd(), 'node_modules');
const work = mkdtempSync(join(tmpdir(), 'vmimg-bench-flatten-'));
try {
  const blob = join(work, 'layer.tar.gz');
  execFileSync('sh', ['-c', `tar -C "$1" -cf - . | gzip -6 > "$2"`, 'sh', src, blob]);
  const time = async (fn: () => Promise<unknown> | unknown): Promise<number> => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const gz = await time(() => execFileSync('sh', ['-c', 'gzip -dc "$1" > /dev/null', 'sh', blob]));
  let entries = 0;
  const flat = await time(async () => {
    const info = await flattenLayer(createReadStream(blob), { dir: join(work, 'layers') });
    entries = info.entryCount;
  });
  const mb = statSync(blob).size / 1e6;
  console.log(`blob ${mb.toFixed(1)} MB gzip, ${entries} entries`);
  console.log(`gzip -dc      ${gz.toFixed(0)} ms`);
  console.log(`flattenLayer  ${flat.toFixed(0)} ms  (${(flat / gz).toFixed(2)}x gzip -dc)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
