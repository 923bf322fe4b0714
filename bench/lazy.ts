/**
 * Lazy-image foundations (issue 15), as ratios in one run:
 *  - index size: the `.zran` checkpoint indexes vs the compressed layers          (target ≤ 1 %)
 *  - index build overhead: cold eager `pull` with `checkpoints: true` (the inflate worker builds them in
 *    the flatten's own inflate: src/lazy/ring-checkpoints.ts) vs without, a warm-up round then ≥ 5
 *    interleaved rounds with a sync before each, wall and process CPU                (target ≤ 1.10×)
 *  - CPU of building alone (`vmimg index build` from the cached blobs) vs node:zlib gunzip of them
 * The image: the host's /usr/lib/x86_64-linux-gnu (shared libraries, ~gzip 3:1), a 96 MiB
 * compressible text file and a 64 MiB random file, layered with umoci (made once, bench/.cache/lazy-layout).
 * Then the `pull --lazy` goals on a ≥ 1 GB image (bench/lazy-pull.ts).
 * Run alone: `node --import tsx bench/lazy.ts`, or `npm run bench -- lazy`. Needs umoci, skopeo, docker-registry.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { pull } from '../src/image/pull.js';
import { buildImageIndex } from '../src/lazy/image-index.js';
import { startRegistry } from '../test/helpers/registry.js';
import { tmpDir } from '../test/helpers/tools.js';
import { loadAverage, median, rounds, sideBySide } from './util.js';
import { lazyPullBench } from './lazy-pull.js';

const CACHE = resolve('bench', '.cache');

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

export async function lazyLayout(): Promise<string> {
  const layout = join(CACHE, 'lazy-layout');
  if (existsSync(join(layout, 'index.json'))) return layout;
  console.log('bench: building the lazy bench image with umoci (once)...');
  const tmp = `${layout}.tmp`;
  const extra = join(CACHE, 'lazy-extra');
  rmSync(tmp, { recursive: true, force: true });
  rmSync(extra, { recursive: true, force: true });
  mkdirSync(extra, { recursive: true });
  writeFileSync(join(extra, 'text.log'), Buffer.from(Array.from({ length: 1_500_000 }, (_, i) => `${i} GET /api/v1/items/${(i * 7919) % 100000} 200 ${i % 977}ms\n`).join('').slice(0, 96 << 20)));
  writeFileSync(join(extra, 'random.bin'), randomBytes(64 << 20));
  run('umoci', ['init', '--layout', tmp]);
  run('umoci', ['new', '--image', `${tmp}:lazy`]);
  run('umoci', ['insert', '--image', `${tmp}:lazy`, '/usr/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu']);
  run('umoci', ['insert', '--image', `${tmp}:lazy`, extra, '/data']);
  run('umoci', ['config', '--image', `${tmp}:lazy`, '--architecture', 'amd64', '--os', 'linux']);
  rmSync(extra, { recursive: true, force: true });
  renameSync(tmp, layout);
  return layout;
}

async function gunzipAll(files: string[]): Promise<void> {
  for (const f of files) {
    await pipeline(createReadStream(f, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: 1 << 20 }), new Writable({ write: (_c, _e, cb) => cb() }));
  }
}

export async function lazyBench(report: (line: string) => void): Promise<void> {
  const layout = await lazyLayout();
  const registry = await startRegistry();
  const work = await tmpDir('vmimg-bench-lazy-');
  try {
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:lazy`, `docker://${registry.host}/lazy:bench`]);
    const ref = `${registry.host}/lazy:bench`;
    report(`lazy: ${loadAverage()}`);
    let n = 0;
    const fresh = (): string => join(work, `c${n++}`);
    let lastCache = '';
    const pullCpu: Record<string, number> = {};
    const all: Record<string, number[]> = {};
    const first: Record<string, number> = {};
    // As the pull section: an untimed warm-up round (V8 compiling), a sync before each timed pull, more rounds
    // than the default 3 (single rounds of this pair moved by ±20 %), each round's ratio printed too.
    const times = await sideBySide({
      'pull (eager)': () => pull(ref, { cacheDir: fresh() }),
      'pull + checkpoints': async () => {
        lastCache = fresh();
        await pull(ref, { cacheDir: lastCache, checkpoints: true });
      },
    }, pullCpu, { rounds: Math.max(rounds, 5), warmup: 1, settle: true, all, first });
    const perRound = all['pull + checkpoints']!.map((v, i) => v / all['pull (eager)']![i]!);
    const blobsDir = join(lastCache, 'blobs', 'sha256');
    const zranDir = join(lastCache, 'checkpoints', 'sha256');
    const zrans = readdirSync(zranDir).filter((f) => f.endsWith('.zran'));
    const indexed = zrans.map((z) => statSync(join(blobsDir, z.replace('.zran', '')))).reduce((s, st) => s + st.size, 0);
    const zranBytes = zrans.map((z) => statSync(join(zranDir, z)).size).reduce((a, b) => a + b, 0);
    const blobs = readdirSync(blobsDir).map((b) => join(blobsDir, b)).filter((f) => readFileSync(f).subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])));
    const compressed = blobs.reduce((s, f) => s + statSync(f).size, 0);
    report(`lazy: ${zrans.length} .zran for ${(indexed / 1e6).toFixed(1)} MB of indexed layers (${(compressed / 1e6).toFixed(1)} MB gzip in all): ${(zranBytes / 1e3).toFixed(0)} kB = ${((100 * zranBytes) / compressed).toFixed(2)} % (target ≤ 1 %)`);
    report(`lazy: cold pull ${(times['pull (eager)']! / 1000).toFixed(2)} s, with checkpoints ${(times['pull + checkpoints']! / 1000).toFixed(2)} s = ${(times['pull + checkpoints']! / times['pull (eager)']!).toFixed(2)}× (target ≤ 1.10×; median of ${perRound.length} interleaved after a warm-up round whose ratio was ${(first['pull + checkpoints']! / first['pull (eager)']!).toFixed(2)}×; each round's ${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}×, median ${median(perRound).toFixed(2)}×); CPU ${(pullCpu['pull (eager)']! / 1000).toFixed(2)} s vs ${(pullCpu['pull + checkpoints']! / 1000).toFixed(2)} s = ${(pullCpu['pull + checkpoints']! / pullCpu['pull (eager)']!).toFixed(2)}×; ${loadAverage()}`);
    const cpu: Record<string, number> = {};
    const build = await sideBySide(
      {
        'gunzip (node:zlib)': () => gunzipAll(blobs),
        'index build (worker)': () => buildImageIndex(blobs.map((b) => ({ digest: `sha256:${b.split('/').pop()}`, diffId: `sha256:${'0'.repeat(64)}` })), { cacheRoot: lastCache, force: true }),
      },
      cpu,
    );
    report(`lazy: index build alone ${(build['index build (worker)']! / 1000).toFixed(2)} s vs node:zlib gunzip ${(build['gunzip (node:zlib)']! / 1000).toFixed(2)} s = ${(build['index build (worker)']! / build['gunzip (node:zlib)']!).toFixed(2)}×`);
  } finally {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  }
  await lazyPullBench(report);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await lazyBench((line) => console.log(line));
}
