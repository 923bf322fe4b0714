import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { bootImage, checkMemory, stripTerminalEscapes, type BootArch, type RootKind } from '../../boot/index.js';
import type { GlobalArgs } from '../context.js';
import { resolveImage } from '../resolve-image.js';
import { run } from './common.js';
import { entrypointOption } from './export.js';
import { escapeTerminal } from '../escape.js';

interface Args {
  image: string;
  kernel?: string;
  timeout: number;
  memory: number;
  entrypoint?: string;
  console?: boolean;
  interactive?: boolean;
  root?: RootKind;
  disk?: string;
  persist?: boolean;
  '--'?: string[];
}

export const bootCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'boot <image>',
  describe: "Boot an image under QEMU (x86_64 or aarch64) with a stock Debian kernel and print its command's output",
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .option('kernel', { type: 'string', describe: 'Kernel image to boot (default: Debian linux-image for the arch, fetched once)' })
      .option('entrypoint', { type: 'string', describe: "Replace the image's entrypoint ('' clears it; words split on spaces)" })
      .option('timeout', { type: 'number', default: 180, describe: 'Seconds before the VM is stopped (TCG is slow)' })
      .option('memory', { type: 'number', default: 512, describe: 'Guest memory in MiB' })
      .option('console', { alias: 'v', type: 'boolean', describe: 'Stream the whole serial console (firmware, kernel, init) to stderr' })
      .option('root', { choices: ['disk', 'initramfs'] as RootKind[], describe: 'Boot from an ext4 disk (virtio-blk) or an initramfs in RAM (default: disk when the image would not fit comfortably in --memory)' })
      .option('disk', { type: 'string', describe: 'The ext4 disk image to boot (made now if missing, and kept); implies --root disk' })
      .option('persist', { type: 'boolean', describe: "Let the guest's writes reach --disk (default: the file never changes)" })
      .option('interactive', { alias: 'i', type: 'boolean', describe: "Give the guest command this terminal's input (default: its stdin is /dev/null)" })
      .example('$0 boot images/busybox-multiarch.oci.tar --arch arm64', 'Boot the arm64 sample; prints "arm64"')
      .example('$0 boot alpine --arch amd64 -- /bin/uname -a', 'Run a command instead of the image cmd')
      .example("$0 boot IMAGE --entrypoint '' -- /bin/id", 'Clear the entrypoint, run /bin/id')
      .example('$0 boot debian:bookworm --root disk --disk vm.img --persist', 'Boot from an ext4 disk that keeps what the guest writes'),
  handler: run<Args>(async (ctx, args) => {
    checkMemory(args.memory); // before a pull that would only end in a refusal
    const { image } = await resolveImage(ctx, args.image);
    const result = await bootImage(image, {
      ...(ctx.platform ? { arch: ctx.platform.architecture as BootArch } : {}),
      ...(args.kernel ? { kernel: args.kernel } : {}),
      kernelDir: join(ctx.cache.root, 'kernels'),
      ...(args['--']?.length ? { command: args['--'].map(String) } : {}),
      ...entrypointOption(args.entrypoint),
      timeoutMs: args.timeout * 1000,
      memoryMiB: args.memory,
      interactive: args.interactive === true,
      ...(args.root ? { root: args.root } : {}),
      ...(args.disk ? { disk: args.disk } : {}),
      persist: args.persist === true,
      signal: ctx.signal,
      // the command's output as it comes; with --json it is only in the final object
      ...(ctx.json ? {} : { onGuestOutput: (text: string) => void process.stdout.write(text) }),
      ...(args.console ? { onOutput: (text: string) => void process.stderr.write(text) } : {}),
      onLog: (message) => ctx.quiet || process.stderr.write(`${escapeTerminal(message)}\n`),
    });
    if (ctx.json) {
      const output = stripTerminalEscapes(result.guestOutput ?? '');
      ctx.out(JSON.stringify({ exitStatus: result.exitStatus ?? null, timedOut: result.timedOut, durationMs: result.durationMs, root: result.root, output }));
    }
    process.exitCode = result.exitStatus ?? 1;
  }),
};
