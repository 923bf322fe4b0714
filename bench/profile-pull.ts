/**
 * One cold pull of the bench image from the real registry on loopback, in this process, for profiling:
 * `node --import tsx bench/profile-pull.ts [pull|load|gunzip] [rounds] [OUT.cpuprofile]` profiles the main
 * thread over the last round only. Prints wall and CPU time per round (not a benchmark: `npm run bench -- pull` is),
 * and `mark` lines (the process's and the registry's pids; each round's start and end on CLOCK_MONOTONIC) for
 * bench/perf-threads.py, which splits a `perf record -k CLOCK_MONOTONIC` of the run into CPU per thread kind
 * and round (its docstring has the commands).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadFromTar, parsePlatform, pull } from '../src/index.js';
import { startRegistry } from '../test/helpers/registry.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { nodeGunzip } from './pull.js';
import { loadAverage, sh, startProfile, threadCpu, threadCpuSince } from './util.js';

const what = process.argv[2] ?? 'pull';
const rounds = Number(process.argv[3] ?? 1);
const layout = await debianLayout();
const work = await tmpDir('vmimg-profile-');
const registry = await startRegistry();
console.log(`mark pids ${process.pid} ${registry.pid}`);
try {
  sh('skopeo copy --quiet --dest-tls-verify=false "oci:$1:bench" "docker://$2/debian:bench"', layout, registry.host);
  const saved = join(work, 'debian.docker.tar');
  if (what === 'load') sh('skopeo copy --quiet "oci:$1:bench" "docker-archive:$2:debian:bench"', layout, saved);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  const blobs = manifest.layers.map((l: { digest: string }) => join(layout, 'blobs', 'sha256', l.digest.slice(7)));
  const platform = parsePlatform('amd64');
  for (let r = 0; r < rounds; r++) {
    const cacheDir = join(work, 'cache');
    rmSync(cacheDir, { recursive: true, force: true });
    const profiler = await startProfile(r === rounds - 1 ? process.argv[4] : undefined);
    const threads = threadCpu();
    const t = performance.now();
    const c = process.cpuUsage();
    console.log(`mark ${what}${r} start ${process.hrtime.bigint()}`);
    if (what === 'pull') await pull(`${registry.host}/debian:bench`, { cacheDir, platform });
    else if (what === 'load') await loadFromTar(saved, { cacheDir, platform });
    else await nodeGunzip(blobs);
    const u = process.cpuUsage(c);
    console.log(`mark ${what}${r} end ${process.hrtime.bigint()}`);
    await profiler.stop();
    console.log(`${what}: ${(performance.now() - t).toFixed(0)} ms wall, ${((u.user + u.system) / 1000).toFixed(0)} ms CPU; ${loadAverage()}`);
    console.log(`  threads: ${threadCpuSince(threads)}`);
  }
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
