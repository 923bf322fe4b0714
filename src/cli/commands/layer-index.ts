import type { CommandModule } from 'yargs';
import { ErrorCode, VmimgError } from '../../errors.js';
import { buildImageIndex, type LayerIndexResult } from '../../lazy/image-index.js';
import type { GlobalArgs } from '../context.js';
import { humanBytes, shortDigest } from '../format.js';
import { resolveImage } from '../resolve-image.js';
import { run } from './common.js';
import { publishIndex } from '../../lazy/publish.js';
import { fallbackTag } from '../../manifest/referrers.js';
import { parseReference } from '../../reference/index.js';
import type { Image } from '../../image/image-dir.js';
import type { Context } from '../context.js';
import { escapeTerminal } from '../escape.js';

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
      .positional('action', { type: 'string', demandOption: true, choices: ['build', 'push'], describe: 'build, or push (publish the built indexes next to the image in its registry)' })
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .option('span-size', { type: 'number', describe: 'MiB of uncompressed tar per span (1-64, default 4)' })
      .option('force', { type: 'boolean', describe: 'Rebuild indexes that exist already' })
      .example('$0 index build debian:bookworm', 'One .zran per gzip layer of 10 MiB or more')
      .example('$0 index push reg.lan:5000/app:1', 'An OCI artifact with subject = the image manifest (referrers API or sha256-<hex> tag)'),
  handler: run<Args>(async (ctx, args) => {
    const span = args['span-size'];
    if (span !== undefined && !(Number.isInteger(span) && span >= 1 && span <= 64)) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--span-size ${span}: a whole number of MiB from 1 to 64`);
    }
    const { image } = await resolveImage(ctx, args.image);
    if (args.action === 'push') return push(ctx, image);
    const results = await buildImageIndex(image.config.layerDetails, {
      cacheRoot: ctx.cache.root,
      force: args.force ?? false,
      checkpoints: span !== undefined ? { spanSize: span * MiB } : {},
      onLayer: (r, i) => ctx.json || ctx.quiet || ctx.out(line(r, i)),
    });
    if (ctx.json) ctx.out(JSON.stringify({ image: image.dir, layers: results }));
  }),
};

async function push(ctx: Context, image: Image): Promise<void> {
  const { reference, manifestDigest } = image.config.source;
  if (image.config.source.kind !== 'registry' || reference === undefined || manifestDigest === undefined) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'index push needs an image pulled from a registry (its manifest is the subject)');
  }
  const layers = image.config.layerDetails.flatMap((l) => {
    const files = image.layers.find((f) => f.diffId === l.diffId);
    return l.digest !== undefined && files ? [{ digest: l.digest, diffId: l.diffId, indexPath: files.indexPath, ...(l.compressedSize !== undefined ? { size: l.compressedSize } : {}) }] : [];
  });
  const r = await publishIndex(parseReference(reference), manifestDigest, layers, { ...(await ctx.registryOptions(reference)), cacheRoot: ctx.cache.root, signal: ctx.signal });
  for (const d of r.skipped) {
    if (!ctx.quiet && !ctx.json) process.stderr.write(`warning: layer ${d}: its cached .idx was made from another blob and this one's size is unknown: left out (readers pull it whole)\n`);
  }
  if (ctx.json) return ctx.out(JSON.stringify({ subject: manifestDigest, ...r }));
  const how = r.discovery === 'referrers-api' ? 'the referrers API' : `the ${fallbackTag(manifestDigest)} tag (referrers tag fallback)`;
  ctx.out(`pushed ${r.artifact.digest} (${r.blobs} blobs) for ${escapeTerminal(reference)}; found through ${how}`);
}

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
      // pulling again reuses the cached layer (same diff_id) and keeps no blob: only an empty cache downloads it
      return `${head} the compressed blob is not in the cache (the layer came from another blob with the same diff_id, or before blobs were kept); lazy readers fetch it whole. To index it: VMIMG_CACHE_DIR=<empty dir> vmimg pull --index-build IMAGE`;
  }
}
