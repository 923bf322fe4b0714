import type { CommandModule } from 'yargs';
import { ErrorCode, VmimgError, isVmimgError } from '../../errors.js';
import { removeImage } from '../../image/catalog.js';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import type { GlobalArgs } from '../context.js';
import { looksLikePath } from '../image-arg.js';
import { run } from './common.js';

interface Args {
  image?: string[];
}

export const rmCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'rm <image..>',
  describe: 'Remove cached images by name or id (layers stay until prune)',
  builder: (y) =>
    y
      .positional('image', { type: 'string', array: true, describe: 'Cached image names or ids (an id prefix needs at least 6 hex digits)', default: undefined })
      .example('$0 rm alpine:3.20', 'By name (its images for every platform)')
      .example('$0 rm alpine:3.20 --arch arm64', 'Only its arm64 image')
      .example('$0 rm 3f2a9c1d07b4 && $0 prune', 'By id, then free the space'),
  handler: run<Args>(async (ctx, args) => {
    for (const name of args.image ?? []) {
      // without --arch a name's images for every platform go; with it, only that platform's
      const ids = await removeImage(ctx.cache, name, ctx.platform).catch((err: unknown) => {
        if (!isVmimgError(err, ErrorCode.NOT_FOUND)) throw err;
        // a loaded tar's name is its absolute path: `rm ./x.tar` means that one
        const path = looksLikePath(name) ? resolve(name.replace(/^~(?=\/|$)/, homedir())) : name;
        if (path !== name) return removeImage(ctx.cache, path, ctx.platform).catch(() => Promise.reject(err));
        if (!/^(sha256:)?[0-9a-f]{1,5}$/.test(name)) throw err;
        throw new VmimgError(ErrorCode.NOT_FOUND, `no cached image named "${name}"`, { hint: 'an image id prefix needs at least 6 hex digits (vmimg images shows 12)' });
      });
      for (const id of ids) if (ctx.json || !ctx.quiet) ctx.out(ctx.json ? JSON.stringify({ removed: id, name }) : `removed ${id}`); // -q: only errors
    }
  }),
};
