import type { CommandModule } from 'yargs';
import { checkExportDestination, EXPORT_FORMATS, exportImage, exportInitramfs, exportTar, type ExportFormat } from '../../export/index.js';
import type { Context, GlobalArgs } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { stdoutSink } from '../stdout.js';
import { resolveImageOrLast } from '../resolve-image.js';
import { imagePlatform, run } from './common.js';
import { escapeTerminal } from '../escape.js';
import { describeExport, exportTarget } from '../export-format.js';
import { exportProgressLine } from '../export-progress.js';
import { splitLayoutArg } from '../image-arg.js';

/** gzip level of .tar.gz / .cpio.gz exports (zlib's default). */
const GZIP_LEVEL = 6;

interface Args {
  dest: string;
  image?: string;
  format?: ExportFormat | 'oci';
  force?: boolean;
  all?: boolean;
  init?: boolean;
  entrypoint?: string;
  size?: string;
  free?: string;
  journal?: boolean;
  '--'?: string[];
}

export const exportCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'export <dest> [image]',
  describe: 'Write an image for a VM: an image directory, a root tar, a bootable initramfs or an ext4 disk (chosen by the file name or --format)',
  builder: (y) =>
    y
      .positional('dest', { type: 'string', demandOption: true, describe: 'Directory, or file: .tar .tar.gz .tgz .cpio .cpio.gz .img .ext4 (- for stdout); oci:DIR[:NAME] an OCI layout' })
      .positional('image', { type: 'string', describe: 'IMAGE (default: the most recently pulled or loaded)' })
      .option('format', {
        choices: [...EXPORT_FORMATS, 'oci'] as (ExportFormat | 'oci')[],
        describe: "dir: config.json + .idx/.contents; tar: the flattened root; initramfs: newc cpio with the vmimg guest init; ext4: a root disk image; oci: an OCI image layout, byte for byte (default: from DEST's name, else dir)",
      })
      .option('force', { alias: 'f', type: 'boolean', describe: 'Replace an existing destination' })
      .option('all', { type: 'boolean', describe: 'oci: the whole index the image is listed in (every platform)' })
      .option('entrypoint', { type: 'string', describe: "initramfs: replace the image's entrypoint ('' clears it; words split on spaces)" })
      .option('init', { type: 'boolean', default: true, describe: 'initramfs, ext4: add the vmimg guest init (--no-init leaves it out)' })
      .option('size', { type: 'string', describe: 'ext4: the image size (bytes, or 512M, 4G); too small fails with the size needed' })
      .option('free', { type: 'string', describe: 'ext4: free space to leave without --size (default: 64M or a fifth of the content)' })
      .option('journal', { type: 'boolean', describe: "ext4: add a jbd2 journal sized as mke2fs would (for a disk kept with boot --persist)" })
      .example('$0 export ./vm', 'Export the most recent image as an image directory')
      .example('$0 export ./vm alpine:3.20 --arch arm64 --force', 'Pull if needed, then export, replacing ./vm')
      .example('$0 export root.cpio.gz IMAGE -- /bin/echo hi', 'A bootable (gzip) initramfs running a command; root.cpio is uncompressed')
      .example('$0 export root.tar.gz IMAGE', 'The flattened root as a gzip-compressed tar')
      .example('$0 export - IMAGE --format tar | tar -t', 'The flattened root as a tar on stdout')
      .example('$0 export root.img IMAGE --format ext4 --free 1G', 'An ext4 root disk with 1 GiB free, written without root')
      .example('$0 export ./layout alpine:3.20 --format oci', 'The image as an OCI image layout, byte for byte (oci:./layout:3.20)')
      .example('$0 export oci:./layout:v1 alpine:3.20 --all', 'Every platform of the image, named v1 in the layout'),
  handler: run<Args>(async (ctx, args) => {
    const oci = await ociDestination(args);
    // oci-export.ts brings the push machinery and the registry client (undici): loaded only for an OCI layout
    if (oci) return (await import('../oci-export.js')).exportOciLayout(ctx, oci.dir, args.image, { refName: oci.tag, all: args.all === true, force: args.force === true });
    if (args.all) throw new UsageError('--all applies to --format oci only (an OCI layout holds every platform; the other formats hold one root)');
    // yargs hands a lone `-` positional over as '' (and an empty path is no destination anyway).
    const toStdout = args.dest === '-' || args.dest === '';
    const target = exportTarget(args.dest, args.format as ExportFormat | undefined, toStdout); // oci went above
    if (toStdout && (target.format === 'dir' || target.format === 'ext4')) throw new UsageError(`the ${target.format} format can't go to stdout; use --format tar or initramfs`);
    if (args.journal === true && target.format !== 'ext4') throw new UsageError(`--journal applies to ext4 only, not ${target.format}`);
    // a destination that will be refused is refused before the pull
    if (!toStdout && target.format !== 'dir') await checkExportDestination(args.dest, args.force === true);
    const { image } = await resolveImageOrLast(ctx, args.image);
    const command = args['--']?.length ? { command: args['--'].map(String) } : {};
    const options = {
      force: args.force === true, init: args.init !== false, signal: ctx.signal, onWarning: warner(ctx), ...command, ...entrypointOption(args.entrypoint),
      ...(args.size !== undefined ? { sizeBytes: parseSize(args.size, '--size') } : {}),
      ...(args.free !== undefined ? { freeBytes: parseSize(args.free, '--free') } : {}),
      ...(args.journal === true ? { journal: true } : {}),
    };
    const id = image.config.source.configDigest;
    const gzip = target.gzip === undefined ? {} : { gzip: target.gzip ? GZIP_LEVEL : (false as const) };
    const line = exportProgressLine(ctx, args.dest);
    const withProgress = { ...options, ...(line.onProgress ? { onProgress: line.onProgress } : {}) };
    let result;
    try {
      if (toStdout) {
        // a failed export destroys its sink; stdoutSink keeps that from reaching process.stdout
        if (target.format === 'tar') await exportTar(image, stdoutSink(), withProgress);
        else await exportInitramfs(image, stdoutSink(), withProgress);
        return;
      }
      result = await exportImage(image, args.dest, { format: target.format, ...withProgress, ...gzip });
    } finally {
      line.done();
    }
    if (ctx.json) {
      const dir = result.format === 'dir' ? { dir: result.path } : {};
      const compression = result.format === 'tar' || result.format === 'initramfs' ? { gzip: target.gzip ?? result.format === 'initramfs' } : {};
      ctx.out(JSON.stringify({ ...result, ...dir, ...compression, id, platform: imagePlatform(image), layers: image.config.layers }));
    } else if (!ctx.quiet) {
      ctx.out(escapeTerminal(`exported ${id} (${imagePlatform(image)}) as ${describeExport(result, target, image.config.layers.length)}`));
    }
  }),
};

/** An OCI layout destination: `--format oci DIR`, or DEST `oci:DIR[:NAME]` (which needs no --format). */
async function ociDestination(args: Args): Promise<{ dir: string; tag?: string | undefined } | undefined> {
  if (args.dest.startsWith('oci:')) {
    if (args.format !== undefined && args.format !== 'oci') throw new UsageError(`--format ${args.format} contradicts the destination ${args.dest} (an OCI layout)`);
    const dest = await splitLayoutArg(args.dest);
    if (dest.tag !== undefined) (await import('../oci-export.js')).checkRefName(dest.tag, args.dest);
    return dest;
  }
  return args.format === 'oci' ? { dir: args.dest } : undefined;
}

/** Export warnings (image entries replaced or left out) on stderr, like progress warnings. */
function warner(ctx: Context): (message: string) => void {
  return (message) => {
    if (ctx.quiet) return;
    process.stderr.write(ctx.json ? `${JSON.stringify({ progress: { type: 'warning', message } })}\n` : `warning: ${message}\n`);
  };
}

/** `--entrypoint '/bin/sh -e'` → ['/bin/sh', '-e']; `--entrypoint ''` clears the image's entrypoint. */
export function entrypointOption(value: string | undefined): { entrypoint?: string[] } {
  if (value === undefined) return {};
  return { entrypoint: value.split(' ').filter((w) => w !== '') };
}

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** `1073741824`, `512M`, `4G`, `1.5G` (binary units, an optional B/iB) → bytes. */
export function parseSize(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${option} ${text}: give bytes or a size such as 512M or 4G`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
}
