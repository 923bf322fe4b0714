// Outside-tool plumbing for tests: find binaries, run them, make temp dirs.
// A missing tool is a test failure with an install hint, never a silent skip.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Which Debian package provides each tool the fixtures use (for error hints). */
export const TOOL_PACKAGES: Record<string, string> = {
  'docker-registry': 'docker-registry',
  python3: 'python3',
  skopeo: 'skopeo',
  umoci: 'umoci',
  htpasswd: 'apache2-utils',
  debootstrap: 'debootstrap',
  cpio: 'cpio',
  zstd: 'zstd',
  time: 'time',
  openssl: 'openssl',
  tar: 'tar',
  gzip: 'gzip',
  e2fsck: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  setfattr: 'attr',
  getfattr: 'attr',
  'dpkg-deb': 'dpkg',
  'apt-get': 'apt',
  find: 'findutils',
  touch: 'coreutils',
  sha256sum: 'coreutils',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-system-aarch64': 'qemu-system-arm',
  curl: 'curl',
  readelf: 'binutils',
  xz: 'xz-utils',
  ctr: 'containerd',
  containerd: 'containerd',
};

/** Absolute path of `name` on PATH, or undefined. */
export function whichSync(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    .split(delimiter)
    .filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/**
 * Path of a required binary. Throws an Error telling exactly what to install
 * (`apt-get install -y PKG`, or `bash .ci/run` which installs everything).
 */
export function requireTool(name: string, aptPackage = TOOL_PACKAGES[name] ?? name): string {
  const found = whichSync(name);
  if (found) return found;
  throw new Error(
    `required tool "${name}" not found on PATH. Install it with: ` +
      `apt-get install -y ${aptPackage}   (or run: bash .ci/run, which installs every test dependency)`,
  );
}

/** Check several tools at once; the error lists every missing one. */
export function requireTools(names: string[]): void {
  const missing = names.filter((n) => !whichSync(n));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((n) => TOOL_PACKAGES[n] ?? n))].join(' ');
  throw new Error(
    `required tools not found on PATH: ${missing.join(', ')}. Install them with: ` +
      `apt-get install -y ${pkgs}   (or run: bash .ci/run, which installs every test dependency)`,
  );
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the child after this many ms (a hang guard, not a timing assertion). */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Error thrown by run(): carries the exit status and the child's stderr. */
export class RunError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'RunError';
  }
}

/** Run a command; resolve with its stdout, throw RunError (with stderr) on failure. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return (await runFull(cmd, args, opts)).stdout;
}

/** Like run() but also returns stderr. */
export function runFull(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!cmd.includes('/')) requireTool(cmd);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new RunError(`${cmd}: ${e.message}`, null, '', '')));
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr });
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      const shown = [cmd, ...args].map(quoteArg).join(' ');
      reject(new RunError(`command failed (${how}): ${shown}\n${stderr.trim()}`, code, stdout, stderr));
    });
    child.stdin.on('error', () => {
      // child may exit before reading stdin; the close handler reports the outcome
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Run a command and return its stdout as raw bytes (e.g. `tar -xOf`). */
export function runBuffer(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<Buffer> {
  if (!cmd.includes('/')) requireTool(cmd);
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, encoding: 'buffer', maxBuffer: 1 << 30 },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const msg = `command failed: ${[cmd, ...args].map(quoteArg).join(' ')}\n${stderr.toString().trim()}`;
        reject(new RunError(msg, typeof error.code === 'number' ? error.code : null, '', stderr.toString()));
      },
    );
  });
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

const toRemove = new Set<string>();
let exitHookInstalled = false;

/** Remove `path` (recursively) when the process exits, unless VMIMG_KEEP_TMP=1. */
export function removeOnExit(path: string): void {
  toRemove.add(path);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    if (process.env.VMIMG_KEEP_TMP === '1') return;
    for (const p of toRemove) {
      try {
        rmSync(p, { recursive: true, force: true });
      } catch {
        // best effort: a leftover temp dir must not fail the run
      }
    }
  });
}

/**
 * Fresh directory under os.tmpdir(), removed at process exit
 * (set VMIMG_KEEP_TMP=1 to keep it for debugging).
 */
export async function tmpDir(prefix = 'vmimg-test-'): Promise<string> {
  return tmpDirSync(prefix);
}

export function tmpDirSync(prefix = 'vmimg-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  removeOnExit(dir);
  return dir;
}

/**
 * A scratch directory on tmpfs (/dev/shm) when there is one, else {@link tmpDir}: for a test that reads
 * GiBs of holes of a sparse file. On these VMs a read of a hole allocates and zeroes a page-cache page
 * per 4 KiB on the disk's filesystem (5 GiB of holes: 10.8 s of kernel time with `dd`), where tmpfs
 * hands out its zero page (0.12 s). What the test checks is not the filesystem's.
 */
export function tmpfsDir(prefix = 'vmimg-test-'): string {
  const base = '/dev/shm';
  try {
    accessSync(base, constants.W_OK);
  } catch {
    return tmpDirSync(prefix);
  }
  const dir = mkdtempSync(join(base, prefix.endsWith('-') ? prefix : `${prefix}-`));
  removeOnExit(dir);
  return dir;
}

/** Remove a directory now (and forget it for exit cleanup). */
export function removeNow(path: string): void {
  toRemove.delete(path);
  rmSync(path, { recursive: true, force: true });
}
