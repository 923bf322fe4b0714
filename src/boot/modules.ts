/**
 * Kernel modules a disk root needs (virtio PCI transport, virtio_blk, ext4) from the same Debian
 * linux-image package as the kernel. The package ships no modules.dep (depmod writes it on install),
 * so dependencies come from each module's own `.modinfo` `depends=` field, which modpost wrote at build
 * time — the same lists depmod would put in modules.dep. Kept per package as
 * `<kernelDir>/<package>/modules/<name>.ko` plus `modules.dep` (ours, depmod's format) and
 * `modules.builtin` (from the package: what needs no loading).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { BootArch } from './kernel.js';
import { runTool } from './tools.js';
import { waitLock } from '../store/lock.js';

/** What a disk root needs loaded, in the order given (their dependencies go first). */
// crc32c_generic: ext4 asks the crypto API for "crc32c" at mount time (a soft dependency, not in depends=).
// arm64's virt machine has virtio-mmio transports: its disk needs no PCI driver (three modules fewer).
export const DISK_MODULES: Record<BootArch, string[]> = {
  amd64: ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'],
  arm64: ['virtio_mmio', 'virtio_blk', 'crc32c_generic', 'ext4'],
};

export interface ModuleSet {
  /** Module files to insmod, dependencies first. */
  files: string[];
  /** Names loaded, in the same order. */
  names: string[];
}

const norm = (name: string): string => name.replace(/-/g, '_');

/** `depends=` of a module file's .modinfo (NUL-separated key=value strings). */
export function modinfoDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at + 1);
  const list = ko.toString('latin1', at + 9, end);
  return list === '' ? [] : list.split(',').map(norm);
}

/** Parses depmod's modules.dep format: `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko ...`. */
function parseDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  const base = (p: string): string => norm(p.slice(p.lastIndexOf('/') + 1).replace(/\.ko(\.\w+)?$/, ''));
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    deps.set(base(line.slice(0, colon)), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(base));
  }
  return deps;
}

/**
 * The modules to load for `wanted` from a kernel dir holding modules/, modules.dep and
 * modules.builtin: each module after its dependencies, built-in ones skipped. A module that is
 * neither a file nor built in is ERR_NOT_FOUND naming it.
 */
export async function moduleClosure(pkgDir: string, wanted: readonly string[]): Promise<ModuleSet> {
  const deps = parseDep(await readFile(join(pkgDir, 'modules.dep'), 'utf8').catch(() => ''));
  const builtinText = await readFile(join(pkgDir, 'modules.builtin'), 'utf8').catch(() => '');
  const builtin = new Set(builtinText.split('\n').filter(Boolean).map((p) => norm(p.slice(p.lastIndexOf('/') + 1).replace(/\.ko$/, ''))));
  const out: ModuleSet = { files: [], names: [] };
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    if (seen.has(name) || builtin.has(name)) return;
    seen.add(name);
    const d = deps.get(name);
    const file = join(pkgDir, 'modules', `${name}.ko`);
    if (d === undefined || !existsSync(file)) {
      throw new VmimgError(ErrorCode.NOT_FOUND, `kernel module ${name} (needed by ${[...chain, name].join(' → ')}) is not in ${pkgDir}: neither a module file nor built in`, {
        hint: 'boot a Debian linux-image package with its modules (vmimg fetches them), or use --root initramfs',
      });
    }
    for (const dep of d) visit(dep, [...chain, name]);
    out.files.push(file);
    out.names.push(name);
  };
  for (const w of wanted) visit(norm(w), []);
  return out;
}

/**
 * Extracts the modules `wanted` (with their dependency closure), modules.builtin and a generated
 * modules.dep from a linux-image .deb into `pkgDir`. One pass over the package reads every module's
 * dependencies; the few files needed are kept from that pass, or from a second one.
 */
export async function extractModules(deb: string, pkgDir: string, wanted: readonly string[]): Promise<void> {
  const index = new Map<string, { path: string; depends: string[] }>();
  const kept = new Map<string, Buffer>();
  let builtin = '';
  await scanDeb(deb, (path, data) => {
    if (/\/modules\.builtin$/.test(path)) builtin = data.toString('utf8');
    if (!path.endsWith('.ko')) return;
    const name = norm(path.slice(path.lastIndexOf('/') + 1, -3));
    index.set(name, { path, depends: modinfoDepends(data) });
    if (LIKELY.test(path)) kept.set(name, data);
  });
  const closure = new Set<string>();
  const builtins = new Set(builtin.split('\n').filter(Boolean).map((p) => norm(p.slice(p.lastIndexOf('/') + 1).replace(/\.ko$/, ''))));
  const add = (n: string): void => {
    if (closure.has(n) || builtins.has(n) || !index.has(n)) return;
    closure.add(n);
    index.get(n)!.depends.forEach(add);
  };
  wanted.map(norm).forEach(add);
  const missing = [...closure].filter((n) => !kept.has(n));
  if (missing.length > 0) await scanDeb(deb, (path, data) => {
    const name = norm(path.slice(path.lastIndexOf('/') + 1, -3));
    if (path.endsWith('.ko') && missing.includes(name)) kept.set(name, data);
  });
  const tmp = await mkdtemp(join(pkgDir, '.modules.tmp-'));
  try {
    for (const n of closure) await writeFile(join(tmp, `${n}.ko`), kept.get(n)!);
    await writeFile(join(pkgDir, 'modules.builtin'), builtin);
    const dep = [...index].map(([, m]) => `${m.path}: ${m.depends.map((d) => index.get(d)?.path ?? `${d}.ko`).join(' ')}`.trimEnd());
    await rm(join(pkgDir, 'modules'), { recursive: true, force: true });
    await rename(tmp, join(pkgDir, 'modules'));
    // last, and whole at once (a reader without the lock judges the set by it): marks the set complete
    const written = join(pkgDir, `.modules.dep.${process.pid}`);
    await writeFile(written, dep.join('\n') + '\n');
    await rename(written, join(pkgDir, 'modules.dep'));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Where a disk root's modules usually live: kept from the first pass to save a second. */
const LIKELY = /\/kernel\/(fs\/(ext4|jbd2|mbcache)|lib\/|crypto\/|drivers\/(virtio|block)\/|arch\/[^/]+\/crypto\/)/;

/** Calls `onFile(path, bytes)` for each regular file of the .deb's data tar under lib/modules. */
async function scanDeb(deb: string, onFile: (path: string, data: Buffer) => void): Promise<void> {
  const child = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'inherit'] });
  const extract = tarStream.extract();
  extract.on('entry', (header, stream, next) => {
    const path = header.name.replace(/^\.\//, '');
    if (header.type !== 'file' || !/^(usr\/)?lib\/modules\//.test(path)) {
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      onFile(path, Buffer.concat(chunks));
      next();
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  await pipeline(child.stdout, extract);
  if ((await exited) !== 0) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `dpkg-deb --fsys-tarfile ${deb} failed`);
}

/**
 * The modules for a disk root of `arch`, from `kernelDir/<package>/`: extracted from the package's
 * .deb there, or from one apt-get downloads, the first time. Processes extracting the same package at
 * once take turns under `<package>/.modules.lock`, and a later one finds the set the first made (two
 * test files booting from a cold kernel cache removed each other's `modules/` while reading it).
 */
export async function ensureModules(pkgDir: string, pkg: string, arch: BootArch, onLog?: (m: string) => void): Promise<ModuleSet> {
  const dep = join(pkgDir, 'modules.dep');
  // a kernel outside the cache layout: its set is what it is
  if (!pkg.startsWith('linux-image-') && existsSync(dep)) return moduleClosure(pkgDir, DISK_MODULES[arch]);
  /** The complete set, or undefined: none yet, or an older vmimg's that needed fewer modules. */
  const complete = (): Promise<ModuleSet | undefined> => (existsSync(dep) ? moduleClosure(pkgDir, DISK_MODULES[arch]).catch(() => undefined) : Promise.resolve(undefined));
  const ready = await complete();
  if (ready !== undefined) return ready;
  await mkdir(pkgDir, { recursive: true });
  const lock = await waitLock(join(pkgDir, '.modules.lock'), { staleMs: MODULES_LOCK_STALE_MS, what: `the kernel modules of ${pkg} (another vmimg is extracting them)` });
  try {
    const made = await complete(); // by the process this one waited for
    if (made !== undefined) return made;
    await rm(dep, { force: true }); // an older vmimg's smaller set is extracted again
    await fetchModules(pkgDir, pkg, arch, onLog);
    return await moduleClosure(pkgDir, DISK_MODULES[arch]);
  } finally {
    await lock.release();
  }
}

/** A modules lock untouched this long is a dead holder's (holders touch it every quarter of it). */
const MODULES_LOCK_STALE_MS = 60_000;

async function fetchModules(pkgDir: string, pkg: string, arch: BootArch, onLog?: (m: string) => void): Promise<void> {
  await mkdir(pkgDir, { recursive: true });
  let deb = (await readdir(pkgDir)).find((n) => n.endsWith('.deb'));
  const tmp = await mkdtemp(join(pkgDir, '.deb.tmp-'));
  try {
    if (!deb) {
      onLog?.(`downloading ${pkg} (apt-get download) for its kernel modules`);
      await runTool('apt-get', ['download', '-q', arch === 'arm64' ? `${pkg}:arm64` : pkg], 'apt', { cwd: tmp });
      const got = (await readdir(tmp)).find((n) => n.endsWith('.deb'));
      if (!got) throw new VmimgError(ErrorCode.NOT_FOUND, `apt-get download ${pkg} produced no .deb`);
      deb = join(tmp, got);
    } else {
      deb = join(pkgDir, deb);
    }
    onLog?.(`extracting ${DISK_MODULES[arch].join(', ')} and their dependencies from ${pkg}`);
    await extractModules(deb, pkgDir, DISK_MODULES[arch]);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
