import type { CommandModule } from 'yargs';
import { ContainerFS } from '../../vfs/container-fs.js';
import type { GlobalArgs } from '../context.js';
import { resolveImage } from '../resolve-image.js';
import { run } from './common.js';
import { escapeTerminal } from '../escape.js';
import { encodeName, isRawName } from '../../util/byte-names.js';

interface Args {
  image: string;
  path: string;
}

export const resolveCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'resolve <image> <path>',
  describe: 'Print the canonical absolute path inside the image (symlinks resolved, confined to the image)',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .positional('path', { type: 'string', demandOption: true, describe: 'Path inside the image' })
      .example('$0 resolve alpine:3.20 /bin/sh', 'Prints /bin/busybox'),
  handler: run<Args>(async (ctx, args) => {
    const { image } = await resolveImage(ctx, args.image);
    const fs = await ContainerFS.open(image);
    try {
      const real = fs.realpath(args.path);
      // --json: exact strings, plus base64 bytes of a path that is not UTF-8 (as ls --json)
      const bytes = isRawName(real) ? { resolvedBytes: encodeName(real).toString('base64') } : {};
      ctx.out(ctx.json ? JSON.stringify({ path: args.path, resolved: real, ...bytes }) : escapeTerminal(real));
    } finally {
      await fs.close();
    }
  }),
};
