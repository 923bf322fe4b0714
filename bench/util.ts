/** What every benchmark script shares: interleaved side-by-side timing, medians, shell helpers. */
import { execFileSync } from 'node:child_process';

export const rounds = Number(process.env.VMIMG_BENCH_ROUNDS ?? 3);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs `bash -c SCRIPT ARGS...`, its stderr shown, stdout dropped. */
export function sh(script: string, ...args: string[]): void {
  execFileSync('bash', ['-c', script, 'bash', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Runs each contender once per round, interleaved (so machine noise hits all alike), and returns
 * each one's median in milliseconds.
 */
export async function sideBySide(contenders: Record<string, () => Promise<unknown> | unknown>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(contenders)) {
      const t = performance.now();
      await fn();
      times[name]!.push(performance.now() - t);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}
