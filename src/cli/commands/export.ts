import type { CommandModule } from 'yargs';
import { exportToDir } from '../../index.js';
import type { GlobalArgs } from '../context.js';
import { resolveImageOrLast } from '../resolve-image.js';
import { imagePlatform, run } from './common.js';

interface Args {
  dir: string;
  image?: string;
  force?: boolean;
}

export const exportCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'export <dir> [image]',
  describe: 'Write an image directory (config.json + per-layer .idx/.contents) for a VM',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'Destination directory (new or empty)' })
      .positional('image', { type: 'string', describe: 'IMAGE (default: the most recently pulled or loaded)' })
      .option('force', { alias: 'f', type: 'boolean', describe: 'Replace a non-empty destination' })
      .example('$0 export ./vm', 'Export the most recent image')
      .example('$0 export ./vm alpine:3.20 --arch arm64 --force', 'Pull if needed, then export, replacing ./vm'),
  handler: run<Args>(async (ctx, args) => {
    const { image } = await resolveImageOrLast(ctx, args.image);
    const out = await exportToDir(image, args.dir, { force: args.force === true });
    const id = image.config.source.configDigest;
    if (ctx.json) {
      ctx.out(JSON.stringify({ dir: out.dir, id, platform: imagePlatform(image), layers: out.layers.map((l) => l.diffId) }));
    } else {
      ctx.out(`exported ${id} (${imagePlatform(image)}) to ${out.dir}`);
    }
  }),
};
