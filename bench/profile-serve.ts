/**
 * `vmimg serve` in this process under the serve bench's load, for profiling (not a benchmark: `npm run
 * bench -- serve` is): `node --import tsx bench/profile-serve.ts [cold|warm] [rounds] [OUT.cpuprofile]`.
 * `cold`: 4 curl clients pull the Debian bench image through a fresh serve cache; `warm`: one client
 * reads it again from the filled cache. Prints wall and CPU per thread per round; the profile (main
 * thread) covers the last round. VMIMG_PROFILE_LOG=1 prints serve's access log (when each answer began
 * and how long it took). `mark` lines as profile-pull.ts's, for bench/perf-threads.py.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, type AccessRecord } from '../src/serve/index.js';
import { startRegistry } from '../test/helpers/registry.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { clients, imageBlobs } from './serve.js';
import { loadAverage, sh, startProfile, threadCpu, threadCpuSince } from './util.js';

const what = process.argv[2] ?? 'cold';
const rounds = Number(process.argv[3] ?? 1);
const layout = await debianLayout();
const work = await tmpDir('vmimg-profile-serve-');
const upstream = await startRegistry();
console.log(`mark pids ${process.pid} ${upstream.pid}`); // for bench/perf-threads.py, as profile-pull.ts
try {
  sh('skopeo copy --quiet --dest-tls-verify=false "oci:$1:bench" "docker://$2/debian:bench"', layout, upstream.host);
  const { blobs } = await imageBlobs(upstream.host);
  for (let r = 0; r < rounds; r++) {
    const cacheDir = join(work, 'cache');
    rmSync(cacheDir, { recursive: true, force: true });
    const log: AccessRecord[] = [];
    const serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: upstream.url, onAccess: (a) => log.push(a) });
    if (what === 'warm') {
      await clients(serve.url, blobs, 1);
      await serve.idle();
    }
    const profiler = await startProfile(r === rounds - 1 ? process.argv[4] : undefined);
    const threads = threadCpu();
    const c = process.cpuUsage();
    const t = performance.now();
    const from = log.length;
    console.log(`mark ${what}${r} start ${process.hrtime.bigint()}`);
    await clients(serve.url, blobs, what === 'warm' ? 1 : 4);
    console.log(`mark ${what}${r} end ${process.hrtime.bigint()}`);
    const wall = performance.now() - t;
    const u = process.cpuUsage(c);
    await profiler.stop();
    await serve.shutdown();
    console.log(`${what}: ${wall.toFixed(0)} ms wall, ${((u.user + u.system) / 1000).toFixed(0)} ms CPU; ${loadAverage()}`);
    console.log(`  threads: ${threadCpuSince(threads)}`);
    if (process.env.VMIMG_PROFILE_LOG === '1') {
      const t0 = Date.parse(log[from]?.time ?? new Date().toISOString());
      for (const a of log.slice(from)) console.log(`  +${Date.parse(a.time) - t0} ms ${a.ms} ms ${a.status} ${a.cache ?? ''} ${a.path.slice(-20)}`);
    }
  }
} finally {
  await upstream.stop();
  rmSync(work, { recursive: true, force: true });
}
