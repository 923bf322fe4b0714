/**
 * Push (issue 12): `vmimg push` of the Debian bench image from the cache to a fresh loopback registry,
 * vs `skopeo copy` from an OCI layout of the same image to another fresh one (target ≤ 0.7×), and a
 * re-push where every blob is already there (target ≤ 0.2 s), as a process and in-process.
 * Registries are started before the timed runs (one fresh pair per round) and stopped after.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import { REPO_ROOT } from '../test/helpers/cache.js';
import { median, rounds, sh, sideBySide } from './util.js';

export interface PushBenchInput {
  /** `127.0.0.1:PORT` of the registry serving `debian:bench`. */
  readonly host: string;
  /** The OCI layout holding `bench` (what skopeo copies from). */
  readonly layout: string;
  readonly work: string;
}

const BIN = join(REPO_ROOT, 'bin', 'vmimg');

function vmimg(cache: string, ...args: string[]): string {
  return execFileSync(process.execPath, [BIN, '--cache-dir', cache, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** Runs the push section; returns its report lines. */
export async function pushBench(input: PushBenchInput): Promise<string[]> {
  const cache = join(input.work, 'push-cache');
  const name = `${input.host}/debian:bench`;
  vmimg(cache, 'pull', name, '--arch', 'amd64', '-q');
  const fresh: RunningRegistry[] = [];
  try {
    for (let i = 0; i < 2 * rounds; i++) fresh.push(await startRegistry());
    let s = 0;
    let v = rounds;
    let last = '';
    const t = await sideBySide({
      skopeo: () => sh('skopeo copy --quiet --dest-tls-verify=false "oci:$1:bench" "docker://$2/debian:bench"', input.layout, fresh[s++]!.host),
      vmimg: () => {
        last = fresh[v++]!.host;
        vmimg(cache, 'push', name, `${last}/debian:bench`, '--arch', 'amd64', '-q');
      },
    });
    const again: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      const out = JSON.parse(vmimg(cache, 'push', name, `${last}/debian:bench`, '--arch', 'amd64', '--json')) as { blobs: { uploaded: number } };
      again.push(performance.now() - start);
      if (out.blobs.uploaded !== 0) throw new Error(`re-push uploaded ${out.blobs.uploaded} blobs`);
    }
    return [
      `push from the cache to a fresh registry: skopeo copy (OCI layout) ${t.skopeo!.toFixed(0)} ms, vmimg push ${t.vmimg!.toFixed(0)} ms → ${(t.vmimg! / t.skopeo!).toFixed(2)}× (target ≤ 0.7×)`,
      `re-push, every blob already there: ${(median(again) / 1000).toFixed(2)} s for the whole vmimg process (target ≤ 0.2 s)`,
    ];
  } finally {
    await Promise.all(fresh.map((r) => r.stop()));
  }
}
