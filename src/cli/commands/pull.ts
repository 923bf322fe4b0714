import type { CommandModule } from 'yargs';
import { formatReference, parseReference } from '../../reference/index.js';
import type { Context, GlobalArgs } from '../context.js';
import type { Image } from '../../image/image-dir.js';
import { UsageError } from '../exit-codes.js';
import { referenceArg } from '../image-arg.js';
import { named, pullImage, warn } from '../resolve-image.js';
import { CONCURRENCY_OPTION, concurrencyOption, LIMIT_OPTIONS, limitOptions, printImage, run } from './common.js';

interface Args {
  ref: string;
  concurrency?: number;
  'max-layer-size'?: string;
  'max-layer-ratio'?: number;
  'index-build'?: boolean;
  lazy?: boolean;
  fill?: boolean;
}

export const pullCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'pull <ref>',
  describe: 'Pull an image from a registry into the cache (verified, flattened)',
  builder: (y) =>
    y
      .positional('ref', { type: 'string', demandOption: true, describe: 'Image reference (name[:tag][@digest])' })
      .option('concurrency', CONCURRENCY_OPTION)
      .options(LIMIT_OPTIONS)
      .option('index-build', { type: 'boolean', describe: 'Also build gzip checkpoint indexes (.zran) of 10+ MiB layers, in a worker thread' })
      .option('lazy', { type: 'boolean', describe: 'Fetch no layer blobs: use the lazy index published next to the image (vmimg index push); files are fetched as they are read' })
      .option('fill', { type: 'boolean', describe: 'With --lazy: once the image is usable, download its layers whole, verify them and make it an ordinary cached image' })
      .example('$0 pull alpine:3.20 --arch arm64', 'The arm64 image of a multi-arch tag')
      .example('$0 pull 127.0.0.1:5000/app:1 --platform linux/arm/v7', 'A variant, from a local registry (plain HTTP)')
      .example('echo "$TOKEN" | $0 pull ghcr.io/me/app --username me --password-stdin', 'With explicit credentials')
      .example('$0 pull reg.lan:5000/app --insecure-registry reg.lan:5000 --json', 'Plain HTTP registry, JSON result')
      .example('$0 pull reg.lan:5000/app:1 --lazy', 'Usable at once: ls, cat, export and boot fetch only what they read'),
  handler: run<Args>(async (ctx, args) => {
    const ref = await referenceArg(args.ref);
    if (args.fill && !args.lazy) throw new UsageError('--fill completes a lazy pull: use it with --lazy (a plain pull is whole already)');
    const options = { ...concurrencyOption(args.concurrency), ...limitOptions(args), ...(args['index-build'] ? { checkpoints: true } : {}) };
    const name = formatReference(parseReference(ref));
    const image = await pullImage(ctx, ref, { ...options, ...(args.lazy ? { lazy: true } : {}) });
    if (!args.fill) return printImage(ctx, await named(ctx, image, 'registry'), name);
    // the lazy image is usable now (other processes may read it); a whole pull flattens each lazy layer
    // from its verified download over its placeholder files, then rewrites the image directory
    if (!ctx.json && !ctx.quiet) printImage(ctx, await named(ctx, image, 'registry'), name);
    await fillFromSpans(ctx, image);
    const filled = await pullImage(ctx, ref, options);
    if (ctx.json) return printImage(ctx, await named(ctx, filled, 'registry'), name);
    if (!ctx.quiet) ctx.out(`filled:   every layer downloaded, verified against its digest and diff_id, and flattened`);
  }),
};

/** Completes the lazy layers' blobs from what reads fetched already: only the missing spans are downloaded. */
async function fillFromSpans(ctx: Context, image: Image): Promise<void> {
  const { openLazyImage, fillLazyBlobs } = await import('../../lazy/open-image.js');
  const { BlobStore } = await import('../../store/blob-store.js');
  const options = await ctx.registryOptions(image.config.source.reference);
  const lazy = await openLazyImage(image, { ...options, signal: ctx.signal, warn: (m) => warn(ctx, m), cacheDir: ctx.cache.root });
  try {
    await fillLazyBlobs(lazy, new BlobStore(ctx.cache.root), ctx.signal);
  } finally {
    await lazy.close();
  }
}
