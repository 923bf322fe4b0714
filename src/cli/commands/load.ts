import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.js';
import { ErrorCode, VmimgError } from '../../errors.js';
import { loadArg } from '../image-arg.js';
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
  describe: 'Load an image tar (docker save, OCI archive) or an OCI image layout directory into the cache',
  builder: (y) =>
    y
      .positional('tar', { type: 'string', demandOption: true, describe: 'Path of the image tar, or an OCI layout directory (oci:DIR[:TAG])' })
      .option('tag', { type: 'string', describe: 'Which image of a multi-image tar or layout: name:tag, OCI ref name, manifest or config digest (or a unique 12+ hex prefix)' })
      .option('concurrency', CONCURRENCY_OPTION)
      .options(LIMIT_OPTIONS)
      .example('$0 load images/busybox-multiarch.oci.tar --arch arm64', 'The arm64 image of a multi-arch OCI archive')
      .example('$0 load saved.tar --tag myapp:1.2', 'One image of a docker save holding several')
      .example('$0 load oci:./layout:1.0', 'The image an OCI layout directory names 1.0'),
  handler: run<Args>(async (ctx, args) => {
    const src = await loadArg(args.tar);
    if (args.tag !== undefined && src.tag !== undefined && args.tag !== src.tag) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${args.tar} names the image ${src.tag}, and --tag names ${args.tag}: give one`);
    }
    const image = await loadTar(ctx, src.path, args.tag ?? src.tag, { ...concurrencyOption(args.concurrency), ...limitOptions(args) }, src.type);
    printImage(ctx, await named(ctx, image, 'tar'), image.name); // the name just loaded, not another archive's
  }),
};
