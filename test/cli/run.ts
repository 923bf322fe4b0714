// Spawns the real `bin/vmimg` (which runs dist/: `npm test` builds it; alone, run `npx tsc -p tsconfig.json`).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cache.js';

export const BIN = join(REPO_ROOT, 'bin', 'vmimg');
export const MULTIARCH_TAR = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');
export const AMD64_TAR = join(REPO_ROOT, 'images', 'busybox-amd64.docker.tar');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export interface CliOptions {
  input?: string;
  env?: Record<string, string | undefined>;
  /** Called once the child runs (to send it signals). */
  onSpawn?: (child: ChildProcess) => void;
}

function checkBuilt(): void {
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/cli/main.js is missing: build first with `npx tsc -p tsconfig.json` (npm test does it)');
  }
}

export function vmimg(args: string[], options: CliOptions = {}): Promise<CliResult> {
  checkBuilt();
  return new Promise((resolve, reject) => {
    const env = { ...process.env, NO_COLOR: undefined, VMIMG_DEBUG: undefined, ...options.env };
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    options.onSpawn?.(child);
  });
}

/** Runs vmimg and fails the test (showing stderr) unless it exits with `code`. */
export async function expectExit(code: number, args: string[], options: CliOptions = {}): Promise<CliResult> {
  const r = await vmimg(args, options);
  if (r.code !== code) {
    throw new Error(`vmimg ${args.join(' ')}: expected exit ${code}, got ${r.code ?? r.signal}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr}`);
  }
  return r;
}

/** The JSON lines of a stream (ls --json, progress). */
export function jsonLines(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}
