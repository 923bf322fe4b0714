/**
 * `vmimg serve` against Debian's docker-registry in proxy mode (issue 16's goals), in one run:
 *  - four clients pulling the Debian bench image cold at once (manifest, config, every layer with
 *    curl, each client its blobs one after another): upstream bytes as a multiple of the image
 *    (target 1.0×; the proxy was measured at 2× per miss) and total wall time (target ≤ 0.5× the proxy's);
 *    The wall time is measured twice: on loopback, and with the upstream behind a shared link of
 *    VMIMG_BENCH_LINK bytes/s (default 50 MB/s; bench/throttle.ts), where upstream bytes cost time;
 *  - a warm hit: one client reading every blob from serve vs straight from the upstream registry
 *    (target ≥ 80 % of the upstream's speed, i.e. time ratio ≤ 1.25×), several reads per round.
 * Two context rows, not goals: the same four clients straight from the upstream registry (no cache in
 * between: Go's sendfile from the page cache, the floor of any cache on this host), and a second cold
 * image through a serve process already warm (its JIT compiled: a fresh process spends ~0.3 CPU-s
 * compiling on V8's helper threads during its first round; a fleet's cache is long-lived). Every cold
 * round starts 3 s after the last one freed its memory, so its writes meet the host's faults for reported
 * free memory as every other's do (docs/BENCHMARKS.md, session 15).
 * Both servers run as their own processes (serve is the CLI from dist/: `npm ci` builds it), the same
 * curl clients ask both, the order alternates per round, and each server's CPU time (/proc) is printed
 * beside the wall times: on a shared host the wall ratio follows the scheduler, the CPU ratio less so.
 * Upstream bytes come from the upstream registry's access log. Standalone: `node --import tsx bench/serve.ts`.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { RegistryClient } from '../src/registry/index.js';
import { parseManifestDocument } from '../src/manifest/index.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import { REPO_ROOT } from '../test/helpers/cache.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { spawnThrottle } from './throttle.js';
import { loadAverage, median, rounds, sh } from './util.js';

const execFileP = promisify(execFile);
const CLIENTS = 4;
/** Long enough for freed memory to be reported to the host (page_reporting's 2 s delay, and its work). */
const REPORTED_MS = 3000;
const BIN = join(REPO_ROOT, 'bin', 'vmimg');
/** The modelled WAN link to the upstream for the second comparison (bytes per second, shared). */
const LINK = Number(process.env.VMIMG_BENCH_LINK ?? 50e6);

/** One client: the tag's manifest, then each blob in turn, bodies discarded. */
async function client(base: string, blobs: string[]): Promise<void> {
  const urls = [`${base}/v2/debian/manifests/bench`, ...blobs.map((d) => `${base}/v2/debian/blobs/${d}`)];
  const args = ['-sSf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json'];
  for (const u of urls) args.push('-o', '/dev/null', u);
  await execFileP('curl', args);
}

/** `n` clients at once; their wall time in ms. */
export async function clients(base: string, blobs: string[], n: number): Promise<number> {
  const t = performance.now();
  await Promise.all(Array.from({ length: n }, () => client(base, blobs)));
  return performance.now() - t;
}

/** The bench image's config and layer digests at `host`'s `debian:bench`, and their total size. */
export async function imageBlobs(host: string): Promise<{ blobs: string[]; imageBytes: number }> {
  const rc = new RegistryClient();
  const doc = parseManifestDocument((await rc.fetchManifest({ registry: host, repository: 'debian', tag: 'bench' })).bytes);
  await rc.close();
  if (doc.kind !== 'manifest') throw new Error('expected a single manifest');
  const descs = [doc.manifest.config, ...doc.manifest.layers];
  return { blobs: descs.map((d) => d.digest), imageBytes: descs.reduce((a, d) => a + d.size, 0) };
}

/** Bytes of blob GETs the upstream sent since `from` (an index into its access log). */
function upstreamBytes(upstream: RunningRegistry, from: number): number {
  return upstream.accessLog().slice(from).filter((l) => l.method === 'GET' && l.path.includes('/blobs/')).reduce((s, l) => s + l.bytes, 0);
}

/** CPU ms (user + system) process `pid` used so far (Linux /proc; 10 ms ticks). */
function processCpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** A server under test: its URL, the pid whose CPU counts, and how to stop it. */
interface Server {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** `vmimg serve` as its own process, as a fleet runs it (and as the proxy runs): the CLI from dist/. */
async function spawnServe(cacheDir: string, upstream: string): Promise<Server> {
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--upstream', upstream, '--cache-dir', cacheDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /serving .* on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`vmimg serve exited ${code}: ${stderr}`)));
  });
  const stop = () => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
  return { url, pid: child.pid!, stop };
}

/** Waits until serve has no download in flight (its last blob committed). */
async function settled(url: string): Promise<void> {
  while (!(await (await fetch(`${url}/metrics`)).text()).includes('vmimg_serve_downloads_in_flight 0')) await new Promise((r) => setTimeout(r, 20));
}

/** `fn`'s wall ms and the CPU ms process `pid` spent meanwhile. */
async function measured(pid: number, fn: () => Promise<unknown>): Promise<[number, number]> {
  const c = processCpu(pid);
  const t = performance.now();
  await fn();
  return [performance.now() - t, processCpu(pid) - c];
}

/** Warm reads per round, alternating serve and the upstream (one read of 95 MB is ~0.1 s: noisy alone). */
const WARM_READS = 3;

/** The lines of the serve section's report. */
export async function serveBench(): Promise<string[]> {
  const layout = await debianLayout();
  const upstream = await startRegistry({ accessLog: true });
  const work = await tmpDir('vmimg-bench-serve-');
  const out: string[] = [];
  try {
    sh('skopeo copy --quiet --dest-tls-verify=false "oci:$1:bench" "docker://$2/debian:bench"', layout, upstream.host);
    const { blobs, imageBytes } = await imageBlobs(upstream.host);
    const t = { serve: [] as number[], proxy: [] as number[], warm: [] as number[], direct: [] as number[], serveLink: [] as number[], proxyLink: [] as number[], floor: [] as number[], again: [] as number[] };
    const cpu = { serve: [] as number[], proxy: [] as number[], warm: [] as number[], direct: [] as number[], floor: [] as number[], again: [] as number[] };
    const bytes = { serve: [] as number[], proxy: [] as number[] };
    /** Four cold clients through a fresh server of `kind` in front of `via`: wall, server CPU, upstream bytes. */
    const cold = async (via: string, kind: 'serve' | 'proxy', after?: (s: Server) => Promise<void>): Promise<[number, number, number]> => {
      await sleep(REPORTED_MS); // what the last round freed is the host's again, as for every round (see warm)
      const mark = upstream.accessLog().length;
      const server: Server = kind === 'serve' ? await spawnServe(join(work, 'serve-cache'), via) : await startRegistry({ proxyOf: via });
      try {
        const [wall, used] = await measured(server.pid, () => clients(server.url, blobs, CLIENTS));
        const upBytes = upstreamBytes(upstream, mark) / imageBytes;
        await after?.(server);
        return [wall, used, upBytes];
      } finally {
        await server.stop();
        rmSync(join(work, 'serve-cache'), { recursive: true, force: true });
      }
    };
    const warm = async (s: Server): Promise<void> => {
      await settled(s.url);
      for (let i = 0; i < WARM_READS; i++) {
        const [tw, cw] = await measured(s.pid, () => clients(s.url, blobs, 1));
        const [td, cd] = await measured(upstream.pid, () => clients(upstream.url, blobs, 1));
        t.warm.push(tw);
        cpu.warm.push(cw);
        t.direct.push(td);
        cpu.direct.push(cd);
      }
      // the same process, its cache emptied (as a prune would): a cold image for a warm process. Then a
      // pause: these VMs report freed memory to the host after ~2 s, and writing into pages freed a moment
      // ago skips the host faults every other cold round pays (session 15: 125 MB of writes cost the
      // pool threads ~460 ms of CPU into reported pages, ~50 ms into just-freed ones)
      rmSync(join(work, 'serve-cache', 'blobs'), { recursive: true, force: true });
      await sleep(REPORTED_MS);
      const [ta, ca] = await measured(s.pid, () => clients(s.url, blobs, CLIENTS));
      t.again.push(ta);
      cpu.again.push(ca);
      await settled(s.url);
    };
    const link = await spawnThrottle(upstream.host, LINK);
    for (let r = 0; r < rounds; r++) {
      // loopback, in alternating order: cold through vmimg serve (then warm reads vs the upstream's), and the proxy
      for (const kind of r % 2 === 0 ? (['serve', 'proxy'] as const) : (['proxy', 'serve'] as const)) {
        const [wall, used, upBytes] = await cold(upstream.url, kind, kind === 'serve' ? warm : undefined);
        t[kind].push(wall);
        cpu[kind].push(used);
        bytes[kind].push(upBytes);
      }
      // the floor: the four clients straight from the upstream, which has the blobs in its page cache
      const [tf, cf] = await measured(upstream.pid, () => clients(upstream.url, blobs, CLIENTS));
      t.floor.push(tf);
      cpu.floor.push(cf);
      // the upstream behind a shared link of LINK bytes/s
      t.serveLink.push((await cold(link.url, 'serve'))[0]);
      t.proxyLink.push((await cold(link.url, 'proxy'))[0]);
    }
    await link.stop();
    const m = (xs: number[]) => median(xs);
    const ms = (xs: number[]) => `${m(xs).toFixed(0)} ms`;
    out.push(`serve: ${CLIENTS} cold clients of the Debian image (${(imageBytes / 1e6).toFixed(1)} MB), each server its own process, medians of ${rounds} rounds, ${loadAverage()}`);
    out.push(`serve: upstream bytes vmimg serve ${m(bytes.serve).toFixed(2)}× the image, docker-registry proxy ${m(bytes.proxy).toFixed(2)}× (target 1.0×)`);
    out.push(`serve: wall on loopback vmimg serve ${ms(t.serve)}, proxy ${ms(t.proxy)} → ${(m(t.serve) / m(t.proxy)).toFixed(2)}× (target ≤ 0.5×); server CPU ${ms(cpu.serve)} vs ${ms(cpu.proxy)} → ${(m(cpu.serve) / m(cpu.proxy)).toFixed(2)}×`);
    out.push(`serve: context: the ${CLIENTS} clients straight from the upstream registry (no cache between; sendfile) ${ms(t.floor)} = ${(m(t.floor) / m(t.proxy)).toFixed(2)}× the proxy's wall, upstream CPU ${ms(cpu.floor)}; a cold image through an already warm serve process ${ms(t.again)} = ${(m(t.again) / m(t.proxy)).toFixed(2)}× the proxy's, server CPU ${ms(cpu.again)}`);
    out.push(`serve: wall behind a ${(LINK / 1e6).toFixed(0)} MB/s upstream link: vmimg serve ${ms(t.serveLink)}, proxy ${ms(t.proxyLink)} → ${(m(t.serveLink) / m(t.proxyLink)).toFixed(2)}× (target ≤ 0.5×)`);
    out.push(`serve: warm hit ${ms(t.warm)} vs straight from the upstream ${ms(t.direct)} → ${((m(t.direct) / m(t.warm)) * 100).toFixed(0)} % of its speed (target ≥ 80 %; medians of ${rounds * WARM_READS} reads each); server CPU ${ms(cpu.warm)} vs ${ms(cpu.direct)}`);
  } finally {
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const line of await serveBench()) console.log(line);
