/**
 * The lazy full read for profiling: `node --import tsx bench/profile-lazy.ts [lazy|lazy-cache|eager|index|first] [rounds] [OUT.cpuprofile]`
 * (`index`: an eager pull building checkpoints, `pull --index-build`; `lazy-cache`: reads keep `.gzpart` as the CLI's do;
 * `first`: the bench's `pull --lazy` + `cat /etc/os-release` + `ls -R /`, timed phase by phase).
 * Publishes the big lazy bench image's index once (bench/lazy-pull.ts), then per round a cold `pull --lazy`
 * and a read of every file (or an eager pull), through the counting proxy; profiles the main thread over the
 * last round. Prints wall, CPU per thread and the readers' counters (not a benchmark: `npm run bench -- lazy` is).
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pull } from '../src/image/pull.js';
import { openLazyImage } from '../src/lazy/open-image.js';
import { publishIndex } from '../src/lazy/publish.js';
import { parseReference } from '../src/reference/index.js';
import { ContainerFS } from '../src/vfs/index.js';
import { startRegistry } from '../test/helpers/registry.js';
import { tmpDir } from '../test/helpers/tools.js';
import { lazyLayout } from './lazy.js';
import { bigLayout, countingProxy, walk } from './lazy-pull.js';
import { loadAverage, startProfile, threadCpu, threadCpuSince } from './util.js';

const what = process.argv[2] ?? 'lazy';
const rounds = Number(process.argv[3] ?? 1);
const layout = bigLayout(await lazyLayout());
const registry = await startRegistry();
const proxy = await countingProxy(registry.url);
const work = await tmpDir('vmimg-profile-lazy-');
try {
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${registry.host}/lazy:big`]);
  const ref = `${proxy.host}/lazy:big`;
  const seed = await pull(ref, { cacheDir: join(work, 'seed'), checkpoints: true });
  const layers = seed.config.layerDetails.map((l, i) => ({ digest: l.digest!, diffId: l.diffId, indexPath: seed.layers[i]!.indexPath }));
  await publishIndex(parseReference(ref), seed.config.source.manifestDigest!, layers, { cacheRoot: join(work, 'seed') });
  for (let r = 0; r < rounds; r++) {
    const cacheDir = join(work, `c${r}`);
    const profiler = await startProfile(r === rounds - 1 ? process.argv[4] : undefined);
    const threads = threadCpu();
    await proxy.reset();
    const t = performance.now();
    const c = process.cpuUsage();
    let counters = '';
    if (what === 'eager' || what === 'index') await pull(ref, { cacheDir, ...(what === 'index' ? { checkpoints: true } : {}) });
    else if (what === 'first') {
      // the bench's `pull --lazy + cat + ls -R`, phase by phase
      const at = [performance.now()];
      const pulled = await pull(ref, { cacheDir, lazy: true });
      at.push(performance.now());
      const image = await openLazyImage(pulled);
      at.push(performance.now());
      const fs = await ContainerFS.open(image);
      at.push(performance.now());
      await fs.read(fs.resolvePath('/etc/os-release', 'open'), 0, 1 << 16);
      at.push(performance.now());
      await walk(fs, false);
      at.push(performance.now());
      await fs.close();
      await image.close();
      const phases = ['pull --lazy', 'open lazy image', 'ContainerFS.open', 'cat /etc/os-release', 'ls -R'];
      counters = phases.map((p, i) => `${p} ${(at[i + 1]! - at[i]!).toFixed(0)} ms`).join(', ');
    } else {
      const image = await openLazyImage(await pull(ref, { cacheDir, lazy: true }), what === 'lazy-cache' ? { cacheDir } : {});
      const fs = await ContainerFS.open(image);
      await walk(fs, true);
      await fs.close();
      const sum: Record<string, number> = {};
      for (const s of image.stats().values()) for (const [k, v] of Object.entries(s)) if (typeof v === 'number') sum[k] = (sum[k] ?? 0) + v;
      counters = Object.entries(sum).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ');
      await image.close();
    }
    const u = process.cpuUsage(c);
    const wall = performance.now() - t;
    await profiler.stop();
    console.log(`${what}: ${wall.toFixed(0)} ms wall, ${((u.user + u.system) / 1000).toFixed(0)} ms CPU, ${((await proxy.bytes()) / 1e6).toFixed(0)} MB fetched; ${loadAverage()}`);
    console.log(`  threads: ${threadCpuSince(threads)}`);
    if (counters) console.log(`  counters: ${counters}`);
    rmSync(cacheDir, { recursive: true, force: true });
  }
} finally {
  await proxy.close();
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
