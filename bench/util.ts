/** What every benchmark script shares: interleaved side-by-side timing, medians, shell helpers. */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

export const rounds = Number(process.env.VMIMG_BENCH_ROUNDS ?? 3);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs `bash -c SCRIPT ARGS...`, its stderr shown, stdout dropped. */
export function sh(script: string, ...args: string[]): void {
  execFileSync('bash', ['-c', script, 'bash', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A contender: what is timed, or that with an untimed `setup` run before it each round (e.g. emptying a cache). */
export type Contender = (() => Promise<unknown> | unknown) | { setup: () => Promise<unknown> | unknown; run: () => Promise<unknown> | unknown };

/** How {@link sideBySide} runs its rounds. */
export interface SideBySideOptions {
  /** Rounds (default {@link rounds}, from VMIMG_BENCH_ROUNDS): short rows need more for a steady median. */
  rounds?: number;
  /**
   * Before each timed run (untimed, after `setup`): `sync`, so no contender pays for the page cache
   * another one left dirty (a skopeo+umoci round leaves ~300 MB to write back, the next fsync met it).
   */
  settle?: boolean;
  /** Filled with every round's wall ms per contender, in order (to show the spread beside the median). */
  all?: Record<string, number[]>;
  /**
   * Untimed rounds first (default 0), run exactly as the timed ones: for in-process contenders whose
   * first runs pay V8's JIT and worker start-up, which a steady median should not mix with warm runs.
   */
  warmup?: number;
  /** Filled with the first warm-up round's wall ms per contender (reported beside the steady median). */
  first?: Record<string, number>;
}

/**
 * Runs each contender once per round, interleaved (so machine noise hits all alike), and returns
 * each one's median in milliseconds. With `cpu`, also fills it with each one's median CPU time of this
 * process in milliseconds (threads included, child processes not: meaningful for in-process contenders).
 * VMIMG_BENCH_VERBOSE=1 prints each run's wall and CPU ms to stderr.
 */
export async function sideBySide(
  contenders: Record<string, Contender>,
  cpu?: Record<string, number>,
  options: SideBySideOptions = {},
): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  const cpus: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  const n = options.rounds ?? rounds;
  const warmup = options.warmup ?? 0;
  for (let r = -warmup; r < n; r++) {
    for (const [name, contender] of Object.entries(contenders)) {
      if (typeof contender !== 'function') await contender.setup();
      if (options.settle) await shx('sync');
      const t = performance.now();
      const c = process.cpuUsage();
      await (typeof contender === 'function' ? contender() : contender.run());
      const used = process.cpuUsage(c);
      const wall = performance.now() - t;
      const cpuMs = (used.user + used.system) / 1000;
      if (process.env.VMIMG_BENCH_VERBOSE) console.error(`  ${r < 0 ? 'warm-up' : 'round'} ${r} ${name}: ${wall.toFixed(0)} ms wall, ${cpuMs.toFixed(0)} ms CPU`);
      if (r === -warmup && options.first) options.first[name] = wall;
      if (r < 0) continue;
      times[name]!.push(wall);
      cpus[name]!.push(cpuMs);
    }
  }
  if (cpu) for (const [k, v] of Object.entries(cpus)) cpu[k] = median(v);
  if (options.all) Object.assign(options.all, times);
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

/** The 1/5/15-minute load averages, for reports: this machine is shared, so times need their context. */
export function loadAverage(): string {
  return `load average ${loadavg().map((x) => x.toFixed(1)).join(', ')} on ${availableParallelism()} cores`;
}

/** CPU ms per thread of this process (Linux /proc), by thread name. */
export function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name}#${tid}`, ((Number(f[11]) + Number(f[12])) * 1000) / 100);
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** "main N, NAME-TID N, ...": CPU ms per thread since `before` (a {@link threadCpu} reading). */
export function threadCpuSince(before: Map<string, number>): string {
  const byName = new Map<string, number>();
  for (const [k, v] of threadCpu()) {
    const tid = k.split('#')[1]!;
    const name = tid === String(process.pid) ? 'main' : `${k.split('#')[0]!}-${tid}`;
    byName.set(name, (byName.get(name) ?? 0) + v - (before.get(k) ?? 0));
  }
  return [...byName].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
}

/** Starts the inspector's CPU profiler on this thread when `out` is given; `stop()` writes the profile to `out`. */
export async function startProfile(out: string | undefined): Promise<{ stop(): Promise<void> }> {
  if (out === undefined) return { stop: async () => undefined };
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(out, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/**
 * Source text (for a child's script) evaluating to the child's peak RSS in bytes: /proc/self/status's
 * VmHWM, which belongs to the process's own memory map. Not `process.resourceUsage().maxRSS`: Linux keeps
 * ru_maxrss across fork and execve, so a child of a large bench process reported the parent's peak
 * (session 8: every RSS row read 229 MiB, the bench process's own size, when run after the pull rounds).
 */
export const PEAK_RSS = "Number(/VmHWM:\\s+(\\d+)/.exec((await import('node:fs')).readFileSync('/proc/self/status', 'utf8'))[1]) * 1024";

/**
 * Runs `bash -c SCRIPT ARGS...` (stderr shown, stdout dropped) from a helper process started once, not by
 * forking this one; resolves with the CPU time the command took (its processes, waited for), rejects when
 * it fails. Forking the bench process (execFileSync) write-protects every page of its large heap for
 * copy-on-write; on these VMs the faults that follow, one per page the next contender writes, doubled a
 * lazy pull's time and CPU (~250 → ~480 ms, session 11), and the fork itself is part of a timed
 * command's time. Timed commands and the `sync` before each run go through here.
 */
export async function shx(script: string, ...args: string[]): Promise<{ cpuMs: number }> {
  helper ??= startHelper();
  const h = helper;
  const answer = await new Promise<HelperAnswer>((resolve, reject) => {
    h.waiting.push({ resolve, reject });
    pipe(h.child.stdout).ref(); // an answer is awaited: keep the process alive for it
    h.child.stdin!.write(`${JSON.stringify({ script, args })}\n`);
  });
  if (answer.status !== 0) throw new Error(`bash -c ${JSON.stringify(script)} failed: ${answer.error ?? `status ${answer.status}, signal ${answer.signal}`}`);
  return { cpuMs: answer.cpuMs };
}

interface HelperAnswer {
  status: number | null;
  signal: string | null;
  error?: string;
  cpuMs: number;
}

interface Helper {
  child: import('node:child_process').ChildProcess;
  waiting: { resolve: (a: HelperAnswer) => void; reject: (err: Error) => void }[];
}
let helper: Helper | undefined;

/** The helper: one command at a time from stdin (a JSON line), an answer line each; CPU from its cutime + cstime (/proc, 100 Hz ticks). */
const HELPER = `
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const cpu = () => { const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' '); return (Number(f[13]) + Number(f[14])) * 10; };
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const { script, args } = JSON.parse(line);
  const c = cpu();
  const r = spawnSync('bash', ['-c', script, 'bash', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.stdout.write(JSON.stringify({ status: r.status, signal: r.signal, error: r.error && r.error.message, cpuMs: cpu() - c }) + '\\n');
});`;

function startHelper(): Helper {
  const child = spawn(process.execPath, ['-e', HELPER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const h: Helper = { child, waiting: [] };
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      h.waiting.shift()?.resolve(JSON.parse(line) as HelperAnswer);
    }
    if (h.waiting.length === 0) pipe(child.stdout).unref();
  });
  child.on('exit', (code) => {
    for (const w of h.waiting.splice(0)) w.reject(new Error(`the bench's command helper exited (${code})`));
    if (helper === h) helper = undefined;
  });
  // the helper never keeps the bench alive
  child.unref();
  pipe(child.stdin).unref();
  pipe(child.stdout).unref();
  return h;
}

function pipe(stream: unknown): { ref(): void; unref(): void } {
  return stream as { ref(): void; unref(): void };
}
