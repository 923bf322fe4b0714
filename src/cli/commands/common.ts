/** Shared pieces of command modules: the handler wrapper and how an image is printed. */
import type { ArgumentsCamelCase } from 'yargs';
import { formatPlatform } from '../../platform/index.js';
import { parseSize, type LayerLimits } from '../../layer/limits.js';
import type { Image } from '../../image/image-dir.js';
import { configPlatform } from '../../manifest/index.js';
import { setDocumentLimits } from '../../manifest/limits.js';
import { loadUserConfig } from '../../config.js';
import { createContext, type Context, type GlobalArgs } from '../context.js';
import type { ResolvedImage } from '../resolve-image.js';
import { UsageError } from '../exit-codes.js';
import { escapeTerminal } from '../escape.js';
import { platformText } from '../format.js';

/**
 * Wraps a command body: builds the context from the global options, and applies the config file's
 * manifest/config size and index walk limits (process-wide settings, src/manifest/limits.ts).
 */
export function run<A>(body: (ctx: Context, args: A & GlobalArgs) => Promise<void>) {
  return async (args: ArgumentsCamelCase<A & GlobalArgs>): Promise<void> => {
    const ctx = createContext(args as unknown as GlobalArgs);
    setDocumentLimits((await loadUserConfig()).limits ?? {});
    try {
      await body(ctx, args as unknown as A & GlobalArgs);
    } finally {
      await ctx.close();
    }
  };
}

export function imagePlatform(image: Image): string {
  return platformText(formatPlatform(configPlatform(image.config)));
}

/** The summary pull/load print: JSON object with --json, aligned lines otherwise. */
export function printImage(ctx: Context, resolved: ResolvedImage, name?: string): void {
  const { image } = resolved;
  const src = image.config.source;
  const summary = {
    name: name ?? resolved.names[0] ?? src.reference ?? null,
    names: resolved.names,
    id: src.configDigest,
    platform: imagePlatform(image),
    dir: image.dir,
    source: src.kind,
    ...(src.manifestDigest ? { manifestDigest: src.manifestDigest } : {}),
    ...(src.indexDigest ? { indexDigest: src.indexDigest } : {}),
    layers: image.config.layers.length,
    ...(lazyCount(image) > 0 ? { lazyLayers: lazyCount(image) } : {}),
  };
  if (ctx.json) {
    ctx.out(JSON.stringify(summary));
    return;
  }
  if (ctx.quiet) return; // -q: the image is in the cache, nothing more to say
  ctx.out(`name:     ${escapeTerminal(summary.name ?? '(none)')}`);
  ctx.out(`platform: ${summary.platform}`);
  ctx.out(`id:       ${summary.id}`);
  // the manifest digest pins the image for a later pull (name@digest); a docker-save tar has none
  if (summary.manifestDigest) ctx.out(`digest:   ${summary.manifestDigest}`);
  ctx.out(`dir:      ${escapeTerminal(summary.dir)}`);
  if (summary.lazyLayers !== undefined) ctx.out(`lazy:     ${summary.lazyLayers} of ${summary.layers} layers are fetched as their files are read`);
}

/** Layers of the image pulled lazily (distinct diff_ids). */
function lazyCount(image: Image): number {
  return new Set(image.config.layerDetails.filter((l) => l.lazy === true).map((l) => l.diffId)).size;
}

/** The --concurrency option of pull and load: layers fetched and flattened at once. */
export const CONCURRENCY_OPTION = { type: 'number', describe: 'Layers downloaded and flattened at once (default 4)' } as const;

/** --concurrency N as the library's option; a count that isn't a positive integer is a usage error. */
export function concurrencyOption(value: number | undefined): { concurrency?: number } {
  if (value === undefined) return {};
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`--concurrency must be a whole number of at least 1, not ${String(value)}`);
  return { concurrency: value };
}

/** --max-layer-size / --max-layer-ratio of pull and load (src/layer/limits.ts). */
export const LIMIT_OPTIONS = {
  'max-layer-size': { type: 'string', describe: 'Refuse a layer expanding past SIZE (e.g. 64G, 500M; default 64G)' },
  'max-layer-ratio': { type: 'number', describe: 'Refuse a layer expanding past N times its compressed size (default 1000)' },
} as const;

/** The limits those flags give (flags win over the config file's "limits"). */
export function limitOptions(args: { 'max-layer-size'?: string; 'max-layer-ratio'?: number }): { limits?: Partial<LayerLimits> } {
  const limits: Partial<LayerLimits> = {};
  if (args['max-layer-size'] !== undefined) limits.maxLayerSize = usage(() => parseSize(args['max-layer-size']!, '--max-layer-size'));
  const ratio = args['max-layer-ratio'];
  if (ratio !== undefined) {
    if (!(ratio > 0)) throw new UsageError(`--max-layer-ratio must be a number above 0, not ${String(ratio)}`);
    limits.maxLayerRatio = ratio;
  }
  return Object.keys(limits).length > 0 ? { limits } : {};
}

function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
