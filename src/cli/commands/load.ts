import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.js';
import { tarArg } from '../image-arg.js';
import { loadTar, named } from '../resolve-image.js';
import { CONCURRENCY_OPTION, concurrencyOption, LIMIT_OPTIONS, limitOptions, printImage, run } from './common.js';

interface Args {
  tar: string;
  tag?: string;
  concurrency?: number;
  'max-layer-size'?: string;
  'max-layer-ratio'?: number;
}

export const loadCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'load <tar>',
  describe: 'Load an image tar (docker save, OCI archive) into the cache',
  builder: (y) =>
    y
      .positional('tar', { type: 'string', demandOption: true, describe: 'Path of the image tar' })
      .option('tag', { type: 'string', describe: 'Which image of a multi-image tar: name:tag, OCI ref name, manifest or config digest (or a unique 12+ hex prefix)' })
      .option('concurrency', CONCURRENCY_OPTION)
      .options(LIMIT_OPTIONS)
      .example('$0 load images/busybox-multiarch.oci.tar --arch arm64', 'The arm64 image of a multi-arch OCI archive')
      .example('$0 load saved.tar --tag myapp:1.2', 'One image of a docker save holding several'),
  handler: run<Args>(async (ctx, args) => {
    const image = await loadTar(ctx, await tarArg(args.tar), args.tag, { ...concurrencyOption(args.concurrency), ...limitOptions(args) });
    printImage(ctx, await named(ctx, image, 'tar'), image.name); // the name just loaded, not another archive's
  }),
};
