import type { CommandModule } from 'yargs';
import { ErrorCode, VmimgError } from '../../errors.js';
import { buildImageIndex, type LayerIndexResult } from '../../lazy/image-index.js';
import type { GlobalArgs } from '../context.js';
import { humanBytes, shortDigest } from '../format.js';
import { resolveImage } from '../resolve-image.js';
import { run } from './common.js';

interface Args {
  action: string;
  image: string;
  'span-size'?: number;
  force?: boolean;
}

const MiB = 1024 * 1024;

/** `vmimg index build IMAGE`: gzip checkpoint indexes (docs/FORMAT.md "`.zran`") for a cached image. */
export const indexCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'index <action> <image>',
  describe: "Build the gzip checkpoint index of an image's layers (for lazy reads)",
  builder: (y) =>
    y
      .positional('action', { type: 'string', demandOption: true, choices: ['build'], describe: 'build' })
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .option('span-size', { type: 'number', describe: 'MiB of uncompressed tar per span (1-64, default 4)' })
      .option('force', { type: 'boolean', describe: 'Rebuild indexes that exist already' })
      .example('$0 index build debian:bookworm', 'One .zran per gzip layer of 10 MiB or more'),
  handler: run<Args>(async (ctx, args) => {
    const span = args['span-size'];
    if (span !== undefined && !(Number.isInteger(span) && span >= 1 && span <= 64)) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--span-size ${span}: a whole number of MiB from 1 to 64`);
    }
    const { image } = await resolveImage(ctx, args.image);
    const results = await buildImageIndex(image.config.layerDetails, {
      cacheRoot: ctx.cache.root,
      force: args.force ?? false,
      checkpoints: span !== undefined ? { spanSize: span * MiB } : {},
      onLayer: (r, i) => ctx.json || ctx.quiet || ctx.out(line(r, i)),
    });
    if (ctx.json) ctx.out(JSON.stringify({ image: image.dir, layers: results }));
  }),
};

function line(r: LayerIndexResult, i: number): string {
  const head = `layer ${i + 1} ${shortDigest(r.digest)} ${humanBytes(r.compressedSize)}:`;
  switch (r.status) {
    case 'built':
    case 'present': {
      const pct = ((100 * r.indexSize!) / r.compressedSize).toFixed(2);
      return `${head} ${r.status === 'built' ? 'built' : 'already built'}, ${r.checkpoints} checkpoints, ${humanBytes(r.indexSize)} (${pct} %)`;
    }
    case 'small':
      return `${head} under 10 MiB, read whole (no index)`;
    case 'not-gzip':
      return `${head} not gzip, read whole (no index)`;
    case 'no-blob':
      return `${head} the compressed blob is not in the cache (pull the image again to keep it)`;
  }
}
