/**
 * Tar exports of the bench image in this process, for profiling:
 * `node --import tsx bench/profile-export.ts [rounds] [OUT.cpuprofile]` profiles the main thread over the
 * last round. Prints wall and CPU time per round (the process's, and per thread) beside `tar -c` of the
 * bench rootfs (not a benchmark: `npm run bench -- export` is), and `mark` lines for bench/perf-threads.py
 * (see bench/profile-pull.ts: `perf record ... -- node ... bench/profile-export.ts 5 > MARKS`).
 */
import { createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { exportTar } from '../src/export/index.js';
import { loadFromLayout } from '../src/image/index.js';
import { parsePlatform } from '../src/platform/index.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { loadAverage, sh, startProfile, threadCpu, threadCpuSince } from './util.js';

const rounds = Number(process.argv[2] ?? 1);
const work = await tmpDir('vmimg-profile-export-');
console.log(`mark pids ${process.pid} 0`);
try {
  const image = await loadFromLayout(await debianLayout(), { tag: 'bench', platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  for (let r = 0; r < rounds; r++) {
    const profile = await startProfile(r === rounds - 1 ? process.argv[3] : undefined);
    let t = performance.now();
    const c = process.cpuUsage();
    const threads = threadCpu();
    console.log(`mark export${r} start ${process.hrtime.bigint()}`);
    await exportTar(image, createWriteStream(join(work, 'out.tar')));
    console.log(`mark export${r} end ${process.hrtime.bigint()}`);
    const u = process.cpuUsage(c);
    const ours = performance.now() - t;
    const perThread = threadCpuSince(threads);
    await profile.stop();
    t = performance.now();
    sh('tar -C "$1" --xattrs -cf "$2" .', join('bench', '.cache', 'debian-rootfs'), join(work, 'peer.tar'));
    const peer = performance.now() - t;
    console.log(`tar export: ${ours.toFixed(0)} ms wall, ${((u.user + u.system) / 1000).toFixed(0)} ms CPU; tar -c ${peer.toFixed(0)} ms (${(ours / peer).toFixed(2)}×); ${loadAverage()}`);
    console.log(`  threads: ${perThread}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
