/**
 * Boot an image under QEMU (TCG, no KVM needed): export it as an initramfs with the guest init,
 * start a stock Debian kernel on it, stream the serial console, read `vmimg: exit status N`.
 * A boot that ends without an exit status is ERR_BOOT_FAILED naming the cause from the console.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import type { Image } from '../image/index.js';
import { EXIT_STATUS_RE, GUEST_INIT, START_LINE } from '../export/guest-init.js';
import { bootFailureCause, GuestOutputSplitter, initramfsTooLarge } from './console.js';
import { checkRootOptions, prepareRoot, type RootKind } from './root.js';
import { ensureKernel, type BootArch } from './kernel.js';
import { checkKernelFile } from './kernel-file.js';
import { checkMemory } from './memory.js';
import { pvhKernel } from './pvh.js';
import { requireBinary } from './tools.js';

export type { BootArch } from './kernel.js';
export type { RootKind } from './root.js';

export interface BootOptions {
  /** Guest architecture; defaults to the image's (which it must match). */
  arch?: BootArch;
  /** Kernel image to boot, checked before QEMU starts; default: a cached/downloaded Debian kernel (see ensureKernel). */
  kernel?: string;
  /** Where kernels are cached (default `<vmimg cache>/kernels`). */
  kernelDir?: string;
  /** Replaces the image's cmd (appended to the entrypoint). */
  command?: string[];
  entrypoint?: string[];
  /** Kill QEMU after this long (default 180 s; TCG is slow). */
  timeoutMs?: number;
  /** Guest RAM in MiB (default 512). */
  memoryMiB?: number;
  /** Extra kernel command-line parameters. */
  append?: string;
  /** The guest's root: 'initramfs' (in RAM) or 'disk' (ext4 on virtio-blk); default: disk when the image would not fit comfortably in memory. */
  root?: RootKind;
  /** Boot this ext4 image (made by exportExt4 with the guest init) as the disk root. */
  disk?: string;
  /** Let guest writes reach `disk` (default: never modified, QEMU snapshot=on). */
  persist?: boolean;
  /** Give the guest command this process's stdin (default: the command's stdin is /dev/null). */
  interactive?: boolean;
  /** Serial console output as it arrives (firmware, kernel, guest). */
  onOutput?: (text: string) => void;
  /** The guest command's own output as it arrives (LF newlines), without the console around it. */
  onGuestOutput?: (text: string) => void;
  onLog?: (message: string) => void;
  signal?: AbortSignal;
}

export interface BootResult {
  /** The guest command's exit status, from the `vmimg: exit status N` line. */
  exitStatus?: number;
  /** Everything the serial console printed (firmware, kernel, guest), as received. */
  output: string;
  /** What the command itself printed: between the guest init's start and exit-status lines, LF newlines. */
  guestOutput?: string;
  /** Milliseconds from QEMU's start until the guest init was about to run the command. */
  startMs?: number;
  qemuExitCode: number | null;
  /** QEMU was killed at `timeoutMs` (after the exit status was printed, or the boot would have failed). */
  timedOut: boolean;
  /** Milliseconds from QEMU's start until it exited. */
  durationMs: number;
  /** What the guest booted from. */
  root?: RootKind;
}

const ARCHES: Record<string, BootArch> = { amd64: 'amd64', x86_64: 'amd64', arm64: 'arm64', aarch64: 'arm64' };
const QEMU_PACKAGE: Record<BootArch, string> = { amd64: 'qemu-system-x86', arm64: 'qemu-system-arm' };

/**
 * The QEMU binary and arguments for one boot: `initrd` is the whole root, or with `disk` the stage
 * one that mounts it (virtio-blk: PCI on amd64, virtio-mmio on arm64; `snapshot=on` unless `persist`).
 */
export function qemuCommand(
  arch: BootArch,
  kernel: string,
  initrd: string,
  options: { memoryMiB?: number; append?: string; disk?: { path: string; persist: boolean } } = {},
): { bin: string; args: string[] } {
  const console = arch === 'amd64' ? 'ttyS0' : 'ttyAMA0';
  const rdinit = options.disk ? '/init' : GUEST_INIT;
  // no_timer_check: under TCG on a busy host the x86 kernel's IO-APIC timer check can fail and panic
  // ("IO-APIC + timer doesn't work"); seen with the test suite running beside other work.
  // pci=noacpi: the PCI interrupt routing comes from the BIOS's table, not ACPI's AML, whose interpreter
  // took ~1.3 s of guest time under TCG to enable the virtio disk's interrupt link (-icount profile)
  // kpti=0 (arm64): Debian's kernel forces page-table isolation on under KASLR, so every entry from and
  // return to user space switches the ASID, and QEMU flushes its whole soft TLB on each: ~20 % of a
  // busybox boot's QEMU CPU (perf). TCG does not speculate, so isolation shields nothing; KASLR stays.
  const archParams = arch === 'amd64' ? ['no_timer_check', 'pci=noacpi'] : ['kpti=0'];
  const append = [`console=${console}`, `rdinit=${rdinit}`, 'panic=-1', 'quiet', ...archParams, options.append ?? ''].join(' ').trim();
  const machine = arch === 'amd64' ? [] : ['-M', 'virt', '-cpu', 'cortex-a57'];
  // arm64: virtio-blk on one of virt's virtio-mmio transports (no PCI driver to load in the stage one)
  const device = arch === 'amd64' ? 'virtio-blk-pci' : 'virtio-blk-device';
  const disk = options.disk
    ? ['-drive', `file=${options.disk.path.replace(/,/g, ',,')},format=raw,if=none,id=root${options.disk.persist ? '' : ',snapshot=on'}`, '-device', `${device},drive=root`]
    : [];
  // -nic none: no network card to probe (no driver would load), no NIC option ROM for the firmware to run
  const args = [...machine, '-m', String(options.memoryMiB ?? 512), '-nographic', '-no-reboot', '-nic', 'none', '-kernel', kernel, '-initrd', initrd, ...disk, '-append', append];
  return { bin: arch === 'amd64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64', args };
}

export function parseExitStatus(output: string): number | undefined {
  const m = EXIT_STATUS_RE.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** The command's own output: after the `vmimg: start` line, before `\nvmimg: exit status N` (or the end). */
export function parseGuestOutput(output: string): string | undefined {
  const text = output.replace(/\r\n/g, '\n');
  const start = text.indexOf(`\n${START_LINE}\n`);
  if (start < 0) return undefined;
  const body = text.slice(start + START_LINE.length + 2);
  const end = body.search(/\nvmimg: exit status \d+\n/);
  return end < 0 ? body : body.slice(0, end);
}

/**
 * Exports `image` as an initramfs into a temp dir, boots it, and returns what the guest said.
 * Throws before QEMU starts for a bad `kernel`, a `memoryMiB` under MIN_MEMORY_MIB (ERR_INVALID_ARGUMENT)
 * or an image too large for `memoryMiB` (ERR_TOO_LARGE),
 * and ERR_BOOT_FAILED (with `details.output`) when the guest reports no exit status.
 */
export async function bootImage(image: Image, options: BootOptions = {}): Promise<BootResult> {
  const arch = bootArch(image, options.arch);
  // QEMU is looked up before the first await (its PATH is the caller's at the call; a test relies on it)
  const qemu = requireBinary(qemuCommand(arch, '', '').bin, QEMU_PACKAGE[arch]);
  checkMemory(options.memoryMiB ?? 512);
  await checkRootOptions(options);
  if (options.kernel !== undefined) await checkKernelFile(options.kernel, arch);
  const kernel =
    options.kernel ?? (await ensureKernel(arch, { ...(options.kernelDir ? { kernelDir: options.kernelDir } : {}), ...(options.onLog ? { onLog: options.onLog } : {}) })).path;
  const memoryMiB = options.memoryMiB ?? 512;
  const work = await mkdtemp(join(tmpdir(), 'vmimg-boot-'));
  try {
    const root = await prepareRoot(image, arch, kernel, memoryMiB, work, options);
    const append = [options.append ?? '', ...root.append, options.interactive ? 'vmimg.stdin=1' : ''].filter((a) => a !== '').join(' ');
    const booted = arch === 'amd64' ? await pvhKernel(kernel, options.onLog) : kernel;
    const { args } = qemuCommand(arch, booted, root.initrd, { memoryMiB, append, ...(root.disk ? { disk: root.disk } : {}) });
    const result = { ...(await runQemu(qemu, args, options)), root: root.kind };
    if (result.exitStatus === undefined) throw bootFailed(result, options.timeoutMs ?? 180_000, root.needMiB);
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function bootArch(image: Image, wanted: BootArch | undefined): BootArch {
  const have = ARCHES[image.config.architecture];
  if (!have) {
    throw new VmimgError(ErrorCode.PLATFORM_MISMATCH, `cannot boot a ${image.config.architecture} image: vmimg boots amd64 and arm64`);
  }
  const want = wanted === undefined ? have : ARCHES[wanted];
  if (want !== have) {
    throw new VmimgError(ErrorCode.PLATFORM_MISMATCH, `the image is for ${have}, not ${String(wanted)}`, {
      hint: `prepare the image for ${String(wanted)} (vmimg pull/load --arch ${String(wanted)})`,
    });
  }
  return have;
}

/** ERR_BOOT_FAILED naming the cause the console shows (kernel panic, unpacking failure, QEMU error). */
function bootFailed(r: BootResult, timeoutMs: number, needMiB: number): VmimgError {
  const cause = bootFailureCause(r.output).join('; ');
  const what = r.timedOut ? `the guest did not finish within ${Math.round(timeoutMs / 1000)} s` : 'the guest stopped without reporting an exit status';
  const hint = initramfsTooLarge(r.output)
    ? `the image needs about ${needMiB} MiB in RAM as an initramfs: boot with --memory ${needMiB} or more, or --root disk`
    : r.timedOut
      ? 'raise --timeout (TCG is slow), or watch the console with --console'
      : 'watch the whole console with --console';
  return new VmimgError(ErrorCode.BOOT_FAILED, `${what}: ${cause || 'the console is empty'}`, {
    hint,
    details: { output: r.output, qemuExitCode: r.qemuExitCode, timedOut: r.timedOut },
  });
}

function runQemu(qemu: string, args: string[], options: BootOptions): Promise<BootResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(qemu, args, { stdio: [options.interactive ? 'inherit' : 'ignore', 'pipe', 'pipe'] });
    const chunks: string[] = [];
    const errors: string[] = [];
    const splitter = new GuestOutputSplitter();
    let timedOut = false;
    let startMs: number | undefined;
    const kill = (): void => void child.kill('SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs ?? 180_000);
    options.signal?.addEventListener('abort', kill, { once: true });
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      chunks.push(text);
      options.onOutput?.(text);
      const guest = splitter.push(text);
      if (startMs === undefined && splitter.started) startMs = Date.now() - started;
      if (guest !== '') options.onGuestOutput?.(guest);
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      errors.push(text);
      options.onOutput?.(text);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new VmimgError(ErrorCode.NOT_FOUND, `cannot run ${qemu}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', kill);
      if (options.signal?.aborted) return reject(new VmimgError(ErrorCode.ABORTED, 'boot cancelled'));
      const rest = splitter.flush();
      if (rest !== '') options.onGuestOutput?.(rest);
      // QEMU's own complaints first: they say why there is no console at all
      const output = [errors.join(''), chunks.join('')].filter((s) => s !== '').join('\n');
      const exitStatus = parseExitStatus(chunks.join(''));
      const guestOutput = parseGuestOutput(chunks.join(''));
      resolve({
        ...(exitStatus !== undefined ? { exitStatus } : {}),
        output,
        ...(guestOutput !== undefined ? { guestOutput } : {}),
        ...(startMs !== undefined ? { startMs } : {}),
        qemuExitCode: code,
        timedOut,
        durationMs: Date.now() - started,
      });
    });
  });
}
