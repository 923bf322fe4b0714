/**
 * Cold pull, warm re-pull and `load`, side by side in one interleaved run (issue 13), as ratios:
 *  - `node:zlib` gunzip of every layer, one stream at a time, 1 MiB reads and chunks, output discarded:
 *    the inflate baseline                                                        (cold pull ≤ 1.6×)
 *  - a plain verified stream: each layer fetched from the same registry, hashed, inflated as above, its tar
 *    hashed and written to one file, and nothing else ({@link plainVerifiedStream}); its CPU over the cores
 *    bounds any pull's wall time (context, not a goal)
 *  - `gzip -dc` of every layer (the bound earlier sessions compared with)
 *  - cold `pull` (in this process, like the gunzip baseline; empty cache)
 *  - warm re-pull of the image just pulled (tag check only)                      (≤ 0.25 s)
 *  - `loadFromTar` of a classic `docker save` tar of the same image (skopeo's docker-archive: plain layers),
 *    empty cache                                                                 (≤ 1.3× node gunzip)
 *  - `skopeo copy` + `umoci unpack`, what users of the Go tools run              (cold pull ≤ 0.12×)
 *
 * What each side includes. node gunzip and the vmimg contenders run in this process alike (no node
 * startup; from the second round on, warm JIT and vmimg's workers already started): gunzip reads each
 * blob from the page cache and inflates it on the thread pool, nothing else. A cold pull also takes the
 * bytes over HTTP from docker-registry on loopback (a process of its own: its CPU is not in the CPU
 * line), writes and fsyncs the blob, hashes it, the diff_id and every file, writes and fsyncs the
 * `.contents` and `.idx` and writes the image directory. Emptying the caches (and skopeo's and umoci's
 * directories) is an untimed setup step of each round: removing ~300 MB of files took ~0.1 s that
 * earlier runs counted as the pull's; so is a `sync` before each timed run (session 8: a skopeo+umoci
 * round left ~300 MB of dirty pages that the next rounds' writes and fsyncs met). The in-process rows run
 * one untimed warm-up round (V8 compiles the pull's code over its first two or three runs: 3.4, 2.7,
 * then 1.7-2.2 CPU-s a pull; the warm-up round's ratio is printed too), then 7 interleaved rounds (3 gave
 * a median that one slow round moved); skopeo+umoci 3 rounds after them.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { request } from 'undici';
import { loadFromTar, pull, parsePlatform } from '../src/index.js';
import { loadAverage, median, rounds, sh, shx, sideBySide } from './util.js';

/** Interleaved rounds of the in-process rows at least (VMIMG_BENCH_ROUNDS sets skopeo+umoci's). */
const FAST_ROUNDS = 7;

const MIB = 1 << 20;

/**
 * The plain way to do the least work any verified pull of these layers does, as a reference for the
 * pull's own: every layer fetched at once from the registry (undici, one GET each), its compressed bytes
 * hashed, inflated by node:zlib's 1 MiB form, the tar hashed (the diff_id) and written to one file.
 * Left out, so it is less work than any real pull: tar parsing, per-file SHA-256, the stored blob, the
 * index, fsyncs. Hashing runs on this thread (node's crypto), inflate on the thread pool. Its CPU time
 * over the cores is a bound no pull doing this work can beat, however it spreads the work.
 */
export async function plainVerifiedStream(host: string, layers: string[], dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tap = (hash: Hash): Transform =>
    new Transform({ highWaterMark: MIB, transform(chunk: Buffer, _enc, cb) { hash.update(chunk); cb(null, chunk); } });
  await Promise.all(layers.map(async (digest, i) => {
    const { statusCode, body } = await request(`http://${host}/v2/debian/blobs/${digest}`);
    if (statusCode !== 200) throw new Error(`plain stream: GET ${digest} answered ${statusCode}`);
    const compressed = createHash('sha256');
    const tar = createHash('sha256');
    await pipeline(body, tap(compressed), createGunzip({ chunkSize: MIB }), tap(tar), createWriteStream(join(dir, String(i))));
    if (`sha256:${compressed.digest('hex')}` !== digest) throw new Error(`plain stream: ${digest} did not verify`);
    tar.digest();
  }));
}

/** Inflates each blob in turn with node:zlib's 1 MiB form (TESTING-NOTES: the fast one), discarding the output. */
export async function nodeGunzip(blobs: string[]): Promise<void> {
  for (const blob of blobs) {
    await pipeline(
      createReadStream(blob, { highWaterMark: MIB }),
      createGunzip({ chunkSize: MIB }),
      new Writable({ highWaterMark: MIB, write: (_chunk, _enc, cb) => cb() }),
    );
  }
}

export interface PullBenchInput {
  /** `127.0.0.1:PORT` of the registry serving `debian:bench`. */
  host: string;
  /** The OCI layout the image came from (its blobs are the gzip layers). */
  layout: string;
  /** Digests of the image's layers, in order. */
  layers: string[];
  work: string;
}

/** Runs the contenders interleaved; returns report lines. The cold pull's cache is left in `work/cache`. */
export async function pullBench(input: PullBenchInput): Promise<string[]> {
  const { host, layout, work } = input;
  const blobs = input.layers.map((d) => join(layout, 'blobs', 'sha256', d.slice(7)));
  const cacheDir = join(work, 'cache');
  const loadCache = join(work, 'load-cache');
  const saved = join(work, 'debian.docker.tar');
  rmSync(saved, { force: true });
  sh('skopeo copy --quiet "oci:$1:bench" "docker-archive:$2:debian:bench"', layout, saved);
  const platform = parsePlatform('amd64');
  const before = loadAverage();
  const cpu: Record<string, number> = {};
  // The in-process rows take 0.03-2 s, so one run moves them by tens of percent: more interleaved
  // rounds for them than for skopeo+umoci (~7 s a round), which runs after them. Before every timed
  // run, `sync` (untimed): no contender meets writeback another left behind (settle).
  const all: Record<string, number[]> = {};
  const first: Record<string, number> = {};
  const fastRounds = Math.max(rounds, FAST_ROUNDS);
  const fast = await sideBySide({
    'node gunzip': () => nodeGunzip(blobs),
    'plain stream': () => plainVerifiedStream(host, input.layers, join(work, 'plain-stream')),
    'gzip -dc': () => shx('for b in "$@"; do gzip -dc "$b" > /dev/null; done', ...blobs),
    // emptying the caches and peer's directories is setup, untimed: no contender's time includes removing files
    'vmimg pull': {
      setup: () => rmSync(cacheDir, { recursive: true, force: true }),
      run: () => pull(`${host}/debian:bench`, { cacheDir, platform }),
    },
    'warm pull': () => pull(`${host}/debian:bench`, { cacheDir, platform }),
    'vmimg load': {
      setup: () => rmSync(loadCache, { recursive: true, force: true }),
      run: () => loadFromTar(saved, { cacheDir: loadCache, platform }),
    },
  }, cpu, { rounds: fastRounds, settle: true, all, warmup: 1, first });
  const slow = await sideBySide({
    'skopeo+umoci': {
      setup: () => {
        rmSync(join(work, 'oci'), { recursive: true, force: true });
        rmSync(join(work, 'bundle'), { recursive: true, force: true });
      },
      run: () =>
        shx(
          'skopeo copy --quiet --src-tls-verify=false "docker://$1/debian:bench" "oci:$2:bench" && umoci unpack --image "$2:bench" "$3" > /dev/null',
          host,
          join(work, 'oci'),
          join(work, 'bundle'),
        ),
    },
  }, undefined, { settle: true });
  const m = { ...fast, ...slow };
  const perRound = all['vmimg pull']!.map((v, i) => v / all['node gunzip']![i]!);
  const plainRounds = all['plain stream']!.map((v, i) => v / all['node gunzip']![i]!);
  const cores = availableParallelism();
  const ms = (k: string): string => `${m[k]!.toFixed(0)} ms`;
  const ratio = (a: string, b: string): string => `${(m[a]! / m[b]!).toFixed(2)}×`;
  return [
    `pull (median of ${fastRounds} interleaved after one untimed warm-up round, skopeo+umoci of ${rounds} after them): node gunzip ${ms('node gunzip')}, plain stream ${ms('plain stream')}, gzip -dc ${ms('gzip -dc')}, vmimg pull ${ms('vmimg pull')}, ` +
      `warm pull ${ms('warm pull')}, vmimg load ${ms('vmimg load')}, skopeo+umoci ${ms('skopeo+umoci')}`,
    `  cold pull: ${ratio('vmimg pull', 'node gunzip')} node gunzip (target ≤ 1.6×; each round's ratio ${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}×, median ${median(perRound).toFixed(2)}×; the warm-up round, JIT cold: ${(first['vmimg pull']! / first['node gunzip']!).toFixed(2)}×), ${ratio('vmimg pull', 'gzip -dc')} gzip -dc, ` +
      `${ratio('vmimg pull', 'skopeo+umoci')} skopeo+umoci (target ≤ 0.12×)`,
    `  plain verified stream (each layer fetched, hashed, inflated, its tar hashed and written to one file; no tar parse, per-file hash, store or index): ` +
      `${ratio('plain stream', 'node gunzip')} node gunzip (each round's ${Math.min(...plainRounds).toFixed(2)}–${Math.max(...plainRounds).toFixed(2)}×), the cold pull ${ratio('vmimg pull', 'plain stream')} it; ` +
      `its CPU over ${cores} cores, the least wall time of any pull doing that work (the registry's CPU not counted): ${(cpu['plain stream']! / cores / m['node gunzip']!).toFixed(2)}× node gunzip`,
    `  CPU time (this process, threads included): node gunzip ${cpu['node gunzip']!.toFixed(0)} ms, plain stream ${cpu['plain stream']!.toFixed(0)} ms, vmimg pull ${cpu['vmimg pull']!.toFixed(0)} ms, ` +
      `warm pull ${cpu['warm pull']!.toFixed(0)} ms, vmimg load ${cpu['vmimg load']!.toFixed(0)} ms`,
    `  ${before} before, ${loadAverage()} after`,
    `  warm re-pull (tag check only): ${(m['warm pull']! / 1000).toFixed(3)} s (target ≤ 0.25 s)`,
    `  load of a docker-save tar: ${ratio('vmimg load', 'node gunzip')} node gunzip (target ≤ 1.3×)`,
  ];
}
