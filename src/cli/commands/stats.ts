import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { findImage } from '../../image/catalog.js';
import type { Image } from '../../image/image-dir.js';
import { emptyStats, type LazyStats } from '../../lazy/lazy-content.js';
import { SpanMap } from '../../lazy/span-map.js';
import { readLazyStats, sum } from '../../lazy/stats.js';
import { decodeZran } from '../../lazy/zran-format.js';
import type { Context, GlobalArgs } from '../context.js';
import { escapeTerminal } from '../escape.js';
import { humanBytes, shortDigest } from '../format.js';
import { run } from './common.js';

interface Args {
  image?: string;
}

/** One layer's line of `vmimg stats`: where its content is, and what reading it lazily cost so far. */
interface LayerReport extends LazyStats {
  diffId: string;
  digest?: string;
  compressedSize?: number;
  /** lazy (spans missing), complete (every span read, the blob not verified whole), or flattened (an eager layer). */
  state: 'lazy' | 'complete' | 'flattened';
  spans?: { present: number; count: number };
}

/** `vmimg stats [IMAGE]`: the lazy-read counters of a cached image, kept across processes. */
export const statsCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'stats [image]',
  describe: 'Show what reading a lazily pulled image has fetched so far (range requests, bytes, spans, reads)',
  builder: (y) =>
    y
      .positional('image', { type: 'string', describe: 'A cached image (default: the most recent)' })
      .example('$0 stats reg.lan:5000/app:1', 'Per layer: spans present, range GETs and bytes, inflate time, read hits and misses')
      .example('$0 stats --json', 'The same as one JSON object'),
  handler: run<Args>(async (ctx, args) => {
    const image = await findImage(ctx.cache, args.image, ctx.platform);
    const kept = await readLazyStats(ctx.cache.root, image.config.source.configDigest);
    const layers: LayerReport[] = [];
    const seen = new Set<string>();
    for (const [i, l] of image.layers.entries()) {
      if (seen.has(l.diffId)) continue;
      seen.add(l.diffId);
      const d = image.config.layerDetails[i];
      const spans = await spansOf(image, i);
      layers.push({
        diffId: l.diffId,
        ...(d?.digest ? { digest: d.digest } : {}),
        ...(d?.compressedSize !== undefined ? { compressedSize: d.compressedSize } : {}),
        state: spans === undefined ? 'flattened' : spans.present < spans.count ? 'lazy' : 'complete',
        ...(spans ? { spans } : {}),
        ...sum(emptyStats(), kept.layers[l.diffId] ?? emptyStats()),
      });
    }
    const total = layers.reduce<LazyStats>((a, b) => sum(a, b), emptyStats());
    const src = image.config.source;
    if (ctx.json) return ctx.out(JSON.stringify({ image: src.configDigest, name: image.name ?? src.reference ?? null, createdAt: src.createdAt, layers, total }));
    print(ctx, image, layers, total);
  }),
};

/** Spans present / spans in all, from the image directory's `.spans` (undefined for a layer that is not lazy). */
async function spansOf(image: Image, i: number): Promise<LayerReport['spans']> {
  const l = image.layers[i]!;
  const digest = image.config.layerDetails[i]?.digest;
  if (l.spansPath === undefined || digest === undefined) return undefined;
  const count = l.zranPath !== undefined ? decodeZran(await readFile(l.zranPath)).checkpoints.length : 1;
  const map = await SpanMap.load(l.spansPath, digest, count);
  let present = 0;
  for (let s = 0; s < count; s++) if (map.has(s)) present++;
  return { present, count };
}

function print(ctx: Context, image: Image, layers: LayerReport[], total: LazyStats): void {
  const src = image.config.source;
  ctx.out(`image:  ${escapeTerminal(image.name ?? src.reference ?? src.configDigest)} (${shortDigest(src.configDigest)})`);
  if (total.firstReadAt !== undefined && src.createdAt !== undefined) {
    const after = (Date.parse(total.firstReadAt) - Date.parse(src.createdAt)) / 1000;
    ctx.out(`first byte read ${after.toFixed(1)} s after the image was pulled`);
  }
  for (const [i, l] of layers.entries()) {
    const head = `layer ${i + 1} ${shortDigest(l.digest ?? l.diffId)}${l.compressedSize !== undefined ? ` ${humanBytes(l.compressedSize)}` : ''}:`;
    const where = l.state === 'flattened' ? 'flattened' : `${l.state}, ${l.spans!.present} of ${l.spans!.count} spans present`;
    ctx.out(`${head} ${where}; ${counters(l)}`);
  }
  ctx.out(`total: ${counters(total)}`);
}

function counters(s: LazyStats): string {
  const avg = s.readMisses > 0 ? ` (waited ${(s.missMs / s.readMisses).toFixed(0)} ms on average, ${s.maxMissMs.toFixed(0)} ms at most)` : '';
  const whole = s.wholeBlobFetches > 0 ? `, ${s.wholeBlobFetches} whole-blob fetches` : '';
  return `${s.rangeRequests} range requests, ${humanBytes(s.rangeBytes)}${whole}; ${s.spansFetched} spans fetched and verified, inflate ${s.inflateMs.toFixed(0)} ms${s.spansReadAhead ? `, ${s.spansReadAhead} spans read ahead` : ''}${s.spansWaited ? `, ${s.spansWaited} waited for (another process fetched them)` : ''}; reads ${s.readHits} hits, ${s.readMisses} misses${avg}`;
}
