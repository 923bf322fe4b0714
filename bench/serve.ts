/**
 * `vmimg serve` against Debian's docker-registry in proxy mode (issue 16's goals), in one run:
 *  - four clients pulling the Debian bench image cold at once (manifest, config, every layer with
 *    curl, each client its blobs one after another): upstream bytes as a multiple of the image
 *    (target 1.0×; the proxy was measured at 2× per miss) and total wall time (target ≤ 0.5× the proxy's);
 *    The wall time is measured twice: on loopback, and with the upstream behind a shared link of
 *    VMIMG_BENCH_LINK bytes/s (default 50 MB/s; bench/throttle.ts), where upstream bytes cost time;
 *  - a warm hit: one client reading every blob from serve vs straight from the upstream registry
 *    (target ≥ 80 % of the upstream's speed, i.e. time ratio ≤ 1.25×).
 * Upstream bytes come from the upstream registry's access log. Standalone: `node --import tsx bench/serve.ts`.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '../src/registry/index.js';
import { parseManifestDocument } from '../src/manifest/index.js';
import { startServe } from '../src/serve/index.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { spawnThrottle } from './throttle.js';
import { loadAverage, median, rounds, sh } from './util.js';

const execFileP = promisify(execFile);
const CLIENTS = 4;
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

/** The lines of the serve section's report. */
export async function serveBench(): Promise<string[]> {
  const layout = await debianLayout();
  const upstream = await startRegistry({ accessLog: true });
  const work = await tmpDir('vmimg-bench-serve-');
  const out: string[] = [];
  try {
    sh('skopeo copy --quiet --dest-tls-verify=false "oci:$1:bench" "docker://$2/debian:bench"', layout, upstream.host);
    const { blobs, imageBytes } = await imageBlobs(upstream.host);
    const times = { serve: [] as number[], proxy: [] as number[], warm: [] as number[], direct: [] as number[], serveLink: [] as number[], proxyLink: [] as number[] };
    const ratios = { serve: [] as number[], proxy: [] as number[] };
    const cold = async (via: string, kind: 'serve' | 'proxy', after?: (base: string) => Promise<void>): Promise<[number, number]> => {
      const mark = upstream.accessLog().length;
      let base: string;
      let stop: () => Promise<void>;
      if (kind === 'serve') {
        const serve = await startServe({ cacheDir: join(work, 'serve-cache'), listen: '127.0.0.1:0', upstream: via });
        [base, stop] = [serve.url, () => serve.shutdown()];
      } else {
        const proxy = await startRegistry({ proxyOf: via });
        [base, stop] = [proxy.url, () => proxy.stop()];
      }
      const t = await clients(base, blobs, CLIENTS);
      const bytes = upstreamBytes(upstream, mark) / imageBytes;
      await after?.(base);
      await stop();
      rmSync(join(work, 'serve-cache'), { recursive: true, force: true });
      return [t, bytes];
    };
    const link = await spawnThrottle(upstream.host, LINK);
    for (let r = 0; r < rounds; r++) {
      // loopback: cold through vmimg serve (then a warm client vs one straight from the upstream), then the proxy
      const [ts, bs] = await cold(upstream.url, 'serve', async (base) => {
        times.warm.push(await clients(base, blobs, 1));
        times.direct.push(await clients(upstream.url, blobs, 1));
      });
      const [tp, bp] = await cold(upstream.url, 'proxy');
      times.serve.push(ts);
      times.proxy.push(tp);
      ratios.serve.push(bs);
      ratios.proxy.push(bp);
      // the upstream behind a shared link of LINK bytes/s
      times.serveLink.push((await cold(link.url, 'serve'))[0]);
      times.proxyLink.push((await cold(link.url, 'proxy'))[0]);
    }
    await link.stop();
    const m = (xs: number[]) => median(xs);
    out.push(`serve: ${CLIENTS} cold clients of the Debian image (${(imageBytes / 1e6).toFixed(1)} MB), medians of ${rounds} rounds, ${loadAverage()}`);
    out.push(`serve: upstream bytes vmimg serve ${m(ratios.serve).toFixed(2)}× the image, docker-registry proxy ${m(ratios.proxy).toFixed(2)}× (target 1.0×)`);
    out.push(`serve: wall on loopback vmimg serve ${m(times.serve).toFixed(0)} ms, proxy ${m(times.proxy).toFixed(0)} ms → ${(m(times.serve) / m(times.proxy)).toFixed(2)}× (target ≤ 0.5×)`);
    out.push(`serve: wall behind a ${(LINK / 1e6).toFixed(0)} MB/s upstream link: vmimg serve ${m(times.serveLink).toFixed(0)} ms, proxy ${m(times.proxyLink).toFixed(0)} ms → ${(m(times.serveLink) / m(times.proxyLink)).toFixed(2)}× (target ≤ 0.5×)`);
    out.push(`serve: warm hit ${m(times.warm).toFixed(0)} ms vs straight from the upstream ${m(times.direct).toFixed(0)} ms → ${((m(times.direct) / m(times.warm)) * 100).toFixed(0)} % of its speed (target ≥ 80 %)`);
  } finally {
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const line of await serveBench()) console.log(line);
