/**
 * Memory and time that grow with entry counts (issue 10 item 2), each in a fresh child process:
 *  - peak RSS of `loadFromTar` (flatten + open + config) of one layer of 1 M empty files   (goal < 300 MiB)
 *  - the same for 1 M empty files over a small busybox-like base layer (the merge path), and the peak RSS of a
 *    fresh process that opens that image's layers and lists a directory (as `vmimg ls` does)
 *  - cold ContainerFS.open of a 100k-entry `.idx` (first open in a fresh process)         (goal < 50 ms)
 * Inputs are written by python3's tarfile (test/helpers/bombs.py) and cached in bench/.cache/.
 * The children run the built package (dist/, rebuilt first), as the CLI runs: under tsx a process
 * holds ~45-55 MiB more (its compiler, the sources and their maps, in every worker thread too).
 * Run alone: node --import tsx bench/entries.ts
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadAverage, median, PEAK_RSS, rounds } from './util.js';

/** Inputs only (shared between worktrees: bench/.cache may be a symlink); scripts and caches go to WORK, a temp dir per run. */
const CACHE = resolve('bench', '.cache');
let WORK = '';
/** Absolute module URLs of the built package: the child scripts live outside the repository. */
const BUILT = (path: string): string => JSON.stringify(pathToFileURL(resolve('dist', path.replace(/\.ts$/, '.js'))).href);

/** `kind` 'entries': one layer of N empty files; 'based': the same layer over a small base layer. */
function archive(entries: number, kind: 'entries' | 'based' = 'entries'): string {
  const out = join(CACHE, `${kind}-${entries}.tar`);
  if (!existsSync(out)) {
    mkdirSync(CACHE, { recursive: true });
    const r = spawnSync('python3', [join('test', 'helpers', 'bombs.py'), `${out}.tmp`, kind, String(entries)], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('building the entries archive failed (python3 needed)');
    spawnSync('mv', [`${out}.tmp`, out]);
  }
  return out;
}

/** Runs `code` (an ES module body, plain JS) in a fresh Node; returns its last stdout line as JSON. */
function child<T>(name: string, code: string): T {
  const file = join(WORK, `${name}.mjs`);
  writeFileSync(file, code);
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

function loadRss(tar: string, cacheDir: string): { rss: number; entries: number; layers: { indexPath: string }[] } {
  rmSync(cacheDir, { recursive: true, force: true });
  return child('entries-load', `
    import { loadFromTar } from ${BUILT('index.ts')};
    const image = await loadFromTar(${JSON.stringify(tar)}, { cacheDir: ${JSON.stringify(cacheDir)}, limits: { maxLayerEntries: 1e7 } });
    const layers = image.layers.map((l) => ({ indexPath: l.indexPath }));
    console.log(JSON.stringify({ rss: ${PEAK_RSS}, entries: image.config.layerDetails.at(-1).entries, layers }));
  `);
}

/** Peak RSS of a fresh process that opens the layers (bottom first) and lists `dir`. */
function openLsRss(layers: { indexPath: string }[], dir: string): { rss: number; names: number } {
  return child('entries-ls', `
    import { ContainerFS } from ${BUILT('vfs/index.ts')};
    const layers = ${JSON.stringify(layers)}.map((l) => ({ indexPath: l.indexPath, contentsPath: '/dev/null' }));
    const fs = await ContainerFS.open(layers);
    const names = fs.readdir(${JSON.stringify(dir)}).length;
    await fs.close();
    console.log(JSON.stringify({ rss: ${PEAK_RSS}, names }));
  `);
}

/**
 * Wall and CPU milliseconds of the first open: the process's (user + system, the JIT's and GC's threads
 * included) and the main thread's alone (Linux schedstat), which a busy machine inflates least.
 */
function coldOpen(indexPath: string): { ms: number; cpu: number; main: number } {
  return child('entries-open', `
    import { readFileSync } from 'node:fs';
    import { ContainerFS } from ${BUILT('vfs/index.ts')};
    const mainCpu = () => Number(readFileSync('/proc/self/task/' + process.pid + '/schedstat', 'latin1').split(' ')[0]) / 1e6;
    const m = mainCpu();
    const c = process.cpuUsage();
    const t = performance.now();
    const fs = await ContainerFS.open([{ indexPath: ${JSON.stringify(indexPath)}, contentsPath: '/dev/null' }]);
    const ms = performance.now() - t;
    const used = process.cpuUsage(c);
    const main = mainCpu() - m;
    await fs.close();
    console.log(JSON.stringify({ ms, cpu: (used.user + used.system) / 1000, main }));
  `);
}

export function entriesBench(): string[] {
  WORK = mkdtempSync(join(tmpdir(), 'vmimg-bench-entries-')); // made here: run.ts imports this module for every section
  const built = spawnSync(process.execPath, [resolve('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('building dist/ failed (tsc -p tsconfig.json)');
  try {
    return [...millionLoad(), ...coldOpens(), loadAverage()];
  } finally {
    rmSync(WORK, { recursive: true, force: true });
  }
}

const MiB = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

function millionLoad(): string[] {
  const cache = join(WORK, 'cache-1m');
  const million = loadRss(archive(1_000_000), cache);
  const one = openLsRss(million.layers, '/d00999');
  const based = loadRss(archive(1_000_000, 'based'), cache);
  const two = openLsRss(based.layers, '/d00999');
  rmSync(cache, { recursive: true, force: true });
  if (one.names !== 1000 || two.names !== 1000) throw new Error(`1 M entries: unexpected listings ${one.names}, ${two.names} names (1000 each)`);
  return [
    `1 M entries, one layer: load (flatten + open + config) peak RSS ${MiB(million.rss)} MiB, fresh open + ls ${MiB(one.rss)} MiB (goal < 300 MiB; node dist/)`,
    `1 M entries over a base layer (merge): load peak RSS ${MiB(based.rss)} MiB, fresh open + ls ${MiB(two.rss)} MiB (goal < 300 MiB; node dist/)`,
  ];
}

function coldOpens(): string[] {
  const cache100k = join(WORK, 'cache-100k');
  loadRss(archive(100_000), cache100k);
  const layers = join(cache100k, 'layers', 'sha256');
  const index = join(layers, readdirSync(layers).find((f) => f.endsWith('.idx'))!); // the archive's only layer
  const runs = Array.from({ length: Math.max(3, rounds) }, () => coldOpen(index));
  const wall = median(runs.map((r) => r.ms));
  const cpu = median(runs.map((r) => r.cpu));
  const main = median(runs.map((r) => r.main));
  return [`100k-entry .idx, cold ContainerFS.open: median ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU (${main.toFixed(0)} ms of it the main thread's), of ${runs.length} fresh processes (goal < 50 ms)`];
}

if (import.meta.url === `file://${process.argv[1]}`) for (const line of entriesBench()) console.log(line);
