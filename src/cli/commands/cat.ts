import type { CommandModule } from 'yargs';
import { pipeline } from 'node:stream/promises';
import { ContainerFS } from '../../index.js';
import type { GlobalArgs } from '../context.js';
import { resolveImage } from '../resolve-image.js';
import { run } from './common.js';

interface Args {
  image: string;
  path: string;
}

export const catCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'cat <image> <path>',
  describe: "Write a file's bytes to stdout (symlinks followed inside the image)",
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .positional('path', { type: 'string', demandOption: true, describe: 'Path inside the image' })
      .example('$0 cat alpine:3.20 /etc/os-release', 'Print a file')
      .example('$0 cat ./vm /bin/sh > sh.bin', 'Copy a binary out of an image directory'),
  handler: run<Args>(async (ctx, args) => {
    const { image } = await resolveImage(ctx, args.image);
    const fs = await ContainerFS.open(image.dir);
    try {
      fs.stat(args.path); // fail before writing anything (ENOENT, ELOOP, ...)
      await pipeline(fs.createReadStream(args.path), process.stdout, { signal: ctx.signal }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err; // the reader went away (| head): not our failure
      });
    } finally {
      await fs.close();
    }
  }),
};
