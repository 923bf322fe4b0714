/**
 * amd64 boots of the kernel's uncompressed ELF image through QEMU's PVH entry, instead of the bzImage.
 * A bzImage decompresses itself in the guest before Linux starts: Debian's is xz, and under TCG that
 * took most of a busybox boot (19 of 26 s wall at load 10; 5.0 s vs 12.8 s for the whole boot once
 * decompressed). The payload is decompressed once on the host (gzip by node:zlib, zstd by fzstd, xz by
 * `xz`) into `vmlinux` beside a cached `vmlinuz`, and used when it carries the PVH entry note
 * (XEN_ELFNOTE_PHYS32_ENTRY, which Debian's kernels have: CONFIG_PVH). Anything else boots as before.
 * Boot protocol fields: Documentation/arch/x86/boot.rst (setup_sects 0x1f1, version 0x206, payload 0x248).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { findBinary } from './tools.js';

/** The ELF note type of the 32-bit PVH entry point, in notes named "Xen" (xen/include/public/elfnote.h). */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const PT_NOTE = 4;

type Payload = { format: 'gzip' | 'zstd' | 'xz' | 'other'; bytes: Buffer };

/** The compressed vmlinux inside a bzImage (boot protocol 2.08+), or undefined for anything else. */
export function bzImagePayload(bz: Buffer): Payload | undefined {
  if (bz.length < 0x250 || bz.toString('latin1', 0x202, 0x206) !== 'HdrS' || bz.readUInt16LE(0x206) < 0x208) return undefined;
  const setupSects = bz[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + bz.readUInt32LE(0x248);
  const bytes = bz.subarray(start, start + bz.readUInt32LE(0x24c));
  if (bytes.length < 8 || start + bytes.length > bz.length) return undefined;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return { format: 'gzip', bytes };
  if (bytes.readUInt32LE(0) === 0xfd2fb528) return { format: 'zstd', bytes: bytes.subarray(0, bytes.length - 4) }; // minus the appended size
  if (bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return { format: 'xz', bytes };
  return { format: 'other', bytes };
}

/** True when `elf` (an ELF64 little-endian executable's first bytes, program headers and notes included) has the PVH entry note. */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const [phentsize, phnum] = [elf.readUInt16LE(0x36), elf.readUInt16LE(0x38)];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== PT_NOTE) continue;
    const off = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(elf.length, off + Number(elf.readBigUInt64LE(ph + 0x20)));
    for (let at = off; at + 12 <= end; ) {
      const [namesz, descsz, type] = [elf.readUInt32LE(at), elf.readUInt32LE(at + 4), elf.readUInt32LE(at + 8)];
      const name = elf.toString('latin1', at + 12, at + 12 + namesz).replace(/\0+$/, '');
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
      at += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

const align4 = (n: number): number => (n + 3) & ~3;

/**
 * The kernel to hand QEMU for an amd64 boot of `kernel`: its PVH-capable `vmlinux` when `kernel` is a
 * cached `<dir>/vmlinuz` (vmimg's kernel cache, or one laid out like it), made the first time;
 * otherwise `kernel` itself. Never fails a boot: a kernel it cannot decompress boots as a bzImage.
 */
export async function pvhKernel(kernel: string, onLog?: (m: string) => void): Promise<string> {
  if (basename(kernel) !== 'vmlinuz' || !basename(dirname(kernel)).startsWith('linux-image-')) return kernel;
  const out = join(dirname(kernel), 'vmlinux');
  const none = `${out}.none`;
  if (existsSync(out)) return out;
  if (existsSync(none)) return kernel;
  const payload = bzImagePayload(await readFile(kernel));
  const elf = payload && (await decompress(payload));
  if (!elf || !hasPvhNote(elf)) {
    // no PVH entry (or no way to decompress): remember it unless only the xz tool was missing
    if (!(payload?.format === 'xz' && !findBinary('xz'))) await writeFile(none, `${payload?.format ?? 'not a bzImage'}\n`).catch(() => undefined);
    return kernel;
  }
  onLog?.(`kernel: booting ${basename(dirname(kernel))} uncompressed through its PVH entry (decompressed once: ${out})`);
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, elf);
    await rename(tmp, out);
  } catch {
    await rm(tmp, { force: true });
    return kernel; // a read-only kernel dir: boot the bzImage
  }
  return out;
}

async function decompress(p: Payload): Promise<Buffer | undefined> {
  try {
    if (p.format === 'gzip') return gunzipSync(p.bytes);
    if (p.format === 'zstd') return Buffer.from(zstdDecompress(p.bytes));
    if (p.format === 'xz' && findBinary('xz')) return await unxz(p.bytes);
  } catch {
    // a payload we cannot read: the bzImage boots as before
  }
  return undefined;
}

/** `xz --single-stream -dc`: the payload is followed by the kernel's 4-byte size, which xz must ignore. */
function unxz(bytes: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const child = spawn('xz', ['--single-stream', '-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => resolve(code === 0 ? Buffer.concat(out) : undefined));
    child.stdin.on('error', () => undefined);
    child.stdin.end(bytes);
  });
}
