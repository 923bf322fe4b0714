/**
 * Push (issue 12): `vmimg push` of the Debian bench image from the cache to a fresh loopback registry,
 * vs `skopeo copy` from an OCI layout of the same image to another fresh one (target ≤ 0.7×), and a
 * re-push where every blob is already there (target ≤ 0.2 s): in-process (the library's pushImage) and
 * as a whole process (Node's start-up included). Registries are started before the timed runs (one
 * fresh pair per round) and stopped after. Wall and CPU time (user + system, from GNU time) are both
 * reported: on a shared machine the wall time of a process mostly measures the machine's load.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import { REPO_ROOT } from '../test/helpers/cache.js';
import { StoreBlobReader } from '../src/content/index.js';
import { CacheLayout } from '../src/image/cache.js';
import { findImage } from '../src/image/catalog.js';
import { pushImage } from '../src/push/push.js';
import { readerSource } from '../src/push/reader-source.js';
import { RegistrySink } from '../src/push/sinks.js';
import { parseReference } from '../src/reference/index.js';
import { BlobStore } from '../src/store/index.js';
import { median, rounds, sideBySide } from './util.js';

export interface PushBenchInput {
  /** `127.0.0.1:PORT` of the registry serving `debian:bench`. */
  readonly host: string;
  /** The OCI layout holding `bench` (what skopeo copies from). */
  readonly layout: string;
  readonly work: string;
}

const BIN = join(REPO_ROOT, 'bin', 'vmimg');


/** Runs the push section; returns its report lines. */
export async function pushBench(input: PushBenchInput): Promise<string[]> {
  const cache = join(input.work, 'push-cache');
  const name = `${input.host}/debian:bench`;
  const vmimg = (...args: string[]) => [BIN, '--cache-dir', cache, ...args];
  execFileSync(process.execPath, vmimg('pull', name, '--arch', 'amd64', '-q'));
  const fresh: RunningRegistry[] = [];
  const cpu: Record<string, number[]> = { skopeo: [], vmimg: [] };
  try {
    for (let i = 0; i < 2 * rounds; i++) fresh.push(await startRegistry());
    let s = 0;
    let v = rounds;
    let last = '';
    const t = await sideBySide({
      skopeo: () => cpu.skopeo!.push(cpuOf('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${input.layout}:bench`, `docker://${fresh[s++]!.host}/debian:bench`])),
      vmimg: () => {
        last = fresh[v++]!.host;
        cpu.vmimg!.push(cpuOf(process.execPath, vmimg('push', name, `${last}/debian:bench`, '--arch', 'amd64', '-q')));
      },
    });
    const whole: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      const out = JSON.parse(execFileSync(process.execPath, vmimg('push', name, `${last}/debian:bench`, '--arch', 'amd64', '--json'), { encoding: 'utf8' })) as { blobs: { uploaded: number } };
      whole.push(performance.now() - start);
      if (out.blobs.uploaded !== 0) throw new Error(`re-push uploaded ${out.blobs.uploaded} blobs`);
    }
    const inProcess = await rePushInProcess(cache, name, `${last}/debian:bench`);
    return [
      `push from the cache to a fresh registry: skopeo copy (OCI layout) ${t.skopeo!.toFixed(0)} ms (CPU ${median(cpu.skopeo!).toFixed(2)} s), ` +
        `vmimg push ${t.vmimg!.toFixed(0)} ms (CPU ${median(cpu.vmimg!).toFixed(2)} s) → ${(t.vmimg! / t.skopeo!).toFixed(2)}× wall (target ≤ 0.7×)`,
      `re-push, every blob already there: ${inProcess.toFixed(0)} ms in-process, ${(median(whole) / 1000).toFixed(2)} s for the whole vmimg process (target ≤ 0.2 s)`,
    ];
  } finally {
    await Promise.all(fresh.map((r) => r.stop()));
  }
}

/** CPU seconds (user + system) `cmd` used, from GNU time's line on stderr. */
function cpuOf(cmd: string, args: string[]): number {
  const r = execFileSync('bash', ['-c', '/usr/bin/time -f "CPU %U %S" "$@" 2>&1 >/dev/null | grep "^CPU" | tail -1', 'bash', cmd, ...args], { encoding: 'utf8' });
  const [, user, sys] = r.trim().split(' ');
  return Number(user) + Number(sys);
}

/** Median time of pushImage from the cache's store into `dest`, where everything already is. */
async function rePushInProcess(cacheDir: string, name: string, dest: string): Promise<number> {
  const cache = new CacheLayout(cacheDir);
  const image = await findImage(cache, name);
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    const reader = await StoreBlobReader.forDigests(new BlobStore(cache.root), [{ digest: image.config.source.manifestDigest!, names: [name] }]);
    const source = await readerSource(reader, (await reader.roots())[0]!.descriptor);
    const sink = new RegistrySink(parseReference(dest));
    const result = await pushImage(source, sink, { tag: 'bench' });
    await sink.close();
    times.push(performance.now() - start);
    if (result.blobs.uploaded !== 0) throw new Error('in-process re-push uploaded blobs');
  }
  return median(times);
}
