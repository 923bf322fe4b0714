/**
 * Stock Debian kernels for booting exports under QEMU, cached as `<dir>/<package>/vmlinuz`
 * (only `boot/vmlinuz-*` and the modules a disk boot's stage one needs are kept from the .deb, not the
 * ~400 MB of all modules: the serial consoles and initramfs support are built in). Fetched with `apt-get download`, so this needs Debian/Ubuntu.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { resolveCacheDir } from '../image/cache.js';
import { DISK_MODULES, extractModules } from './modules.js';
import { findBinary, runTool } from './tools.js';

export type BootArch = 'amd64' | 'arm64';

export interface KernelOptions {
  /** Directory of cached kernels (default `<vmimg cache>/kernels`). */
  kernelDir?: string;
  /** Fetch with apt-get when not cached (default true). */
  download?: boolean;
  onLog?: (message: string) => void;
}

export interface Kernel {
  arch: BootArch;
  path: string;
  /** Debian package it came from, e.g. linux-image-6.1.0-56-amd64. */
  package: string;
}

export function defaultKernelDir(): string {
  return join(resolveCacheDir(), 'kernels');
}

/** The newest cached kernel for `arch`, if any. */
export async function findCachedKernel(arch: BootArch, kernelDir = defaultKernelDir()): Promise<Kernel | undefined> {
  let names: string[];
  try {
    names = await readdir(kernelDir);
  } catch {
    return undefined;
  }
  const found = names
    .filter((n) => n.startsWith('linux-image-') && n.endsWith(`-${arch}`) && existsSync(join(kernelDir, n, 'vmlinuz')))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const pkg = found[found.length - 1];
  return pkg ? { arch, package: pkg, path: join(kernelDir, pkg, 'vmlinuz') } : undefined;
}

/** The versioned package `linux-image-<arch>` depends on now (`apt-cache depends`). */
export async function kernelPackage(arch: BootArch): Promise<string> {
  const meta = arch === 'amd64' ? 'linux-image-amd64' : 'linux-image-arm64:arm64';
  const text = await runTool('apt-cache', ['depends', meta], 'apt');
  const m = /Depends:\s*(linux-image-[0-9][^\s:]*)/.exec(text);
  if (!m) {
    throw new VmimgError(ErrorCode.NOT_FOUND, `apt-cache knows no kernel package behind ${meta}`, {
      hint: arch === 'arm64' ? 'run: dpkg --add-architecture arm64 && apt-get update' : 'run: apt-get update',
    });
  }
  return m[1]!;
}

/** A cached kernel for `arch`, downloading the current Debian one when there is none. */
export async function ensureKernel(arch: BootArch, options: KernelOptions = {}): Promise<Kernel> {
  const dir = options.kernelDir ?? defaultKernelDir();
  const cached = await findCachedKernel(arch, dir);
  if (cached) return cached;
  if (options.download === false || !findBinary('apt-get') || !findBinary('dpkg-deb')) {
    throw missingKernel(arch, dir);
  }
  if (arch === 'arm64') await requireForeignArch();
  const pkg = await kernelPackage(arch);
  options.onLog?.(`downloading ${pkg} (apt-get download) into ${dir}`);
  await mkdir(dir, { recursive: true });
  const tmp = await mkdtemp(join(dir, `.${pkg}.tmp-`));
  try {
    await runTool('apt-get', ['download', '-q', arch === 'arm64' ? `${pkg}:arm64` : pkg], 'apt', { cwd: tmp });
    const deb = (await readdir(tmp)).find((n) => n.endsWith('.deb'));
    if (!deb) throw new VmimgError(ErrorCode.NOT_FOUND, `apt-get download ${pkg} produced no .deb`);
    await extractVmlinuz(join(tmp, deb), join(tmp, 'vmlinuz'));
    // the disk boot's stage-one modules come from the same package: kept now, so a first disk boot
    // does not download it a second time
    options.onLog?.(`extracting ${DISK_MODULES[arch].join(', ')} and their dependencies from ${pkg}`);
    await extractModules(join(tmp, deb), tmp, DISK_MODULES[arch]);
    await rm(join(tmp, deb));
    const final = join(dir, pkg);
    await rename(tmp, final).catch((err) => {
      if (!existsSync(join(final, 'vmlinuz'))) throw err; // a parallel fetch won
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { arch, package: pkg, path: join(dir, pkg, 'vmlinuz') };
}

/** Streams `dpkg-deb --fsys-tarfile` and keeps `boot/vmlinuz-*`. */
export function extractVmlinuz(deb: string, dest: string): Promise<void> {
  return extractDebFile(deb, /^(\.\/)?boot\/vmlinuz-/, dest, 0o644, 'boot/vmlinuz-*');
}

/** Streams `dpkg-deb --fsys-tarfile` and writes the first regular file whose name matches `name` to `dest`. */
export async function extractDebFile(deb: string, name: RegExp, dest: string, mode: number, what: string): Promise<void> {
  const child = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'inherit'] });
  const extract = tarStream.extract();
  let found = false;
  extract.on('entry', (header, stream, next) => {
    if (!found && header.type === 'file' && name.test(header.name)) {
      found = true;
      pipeline(stream, createWriteStream(dest, { mode })).then(() => next(), next);
    } else {
      stream.on('end', () => next());
      stream.resume();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  await pipeline(child.stdout, extract);
  const code = await exited;
  if (code !== 0) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `dpkg-deb --fsys-tarfile ${deb} failed (exit ${code})`);
  if (!found) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${deb} holds no ${what}`);
}

async function requireForeignArch(): Promise<void> {
  const text = await runTool('dpkg', ['--print-foreign-architectures'], 'dpkg');
  if (!text.split('\n').includes('arm64')) {
    throw new VmimgError(ErrorCode.NOT_FOUND, 'apt cannot fetch arm64 packages on this machine', {
      hint: 'run: dpkg --add-architecture arm64 && apt-get update (or pass a kernel with --kernel)',
    });
  }
}

function missingKernel(arch: BootArch, dir: string): VmimgError {
  const pkg = arch === 'amd64' ? 'linux-image-amd64' : 'linux-image-arm64:arm64';
  return new VmimgError(ErrorCode.NOT_FOUND, `no ${arch} kernel in ${dir}`, {
    hint:
      `pass one with --kernel PATH, or on Debian: apt-get download ${pkg}'s versioned package ` +
      `(apt-cache depends ${pkg}) and run dpkg-deb -x on it; vmimg does that itself when apt-get is available`,
  });
}
