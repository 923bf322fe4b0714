import type { CommandModule } from 'yargs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError, isVmimgError } from '../../errors.js';
import { findImage } from '../../image/catalog.js';
import { CONFIG_FILE, hasLazyLayers, loadFromDir, type Image } from '../../image/image-dir.js';
import { validateLayout, validateTar, verifyImage, type TarReport } from '../../image/validate.js';
import { formatReference, parseReference } from '../../reference/index.js';
import { classifyImageArg } from '../image-arg.js';
import { cachedByPathName } from '../resolve-image.js';
import { humanBytes } from '../format.js';
import type { Context, GlobalArgs } from '../context.js';
import { platformText } from '../format.js';
import { run } from './common.js';
import { escapeTerminal } from '../escape.js';

interface Args {
  target: string;
  'check-registry'?: boolean;
}

export const validateCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'validate <target>',
  describe: 'Check a reference (grammar, and with --check-registry that it exists), what an image tar holds, or every file of a cached image or image directory against its digest',
  builder: (y) =>
    y
      .positional('target', { type: 'string', demandOption: true, describe: 'REF, TAR, image directory, or cached image name/id' })
      .option('check-registry', { type: 'boolean', describe: 'Also ask the registry that the reference exists' })
      .example('$0 validate alpine:3.20', 'Prints docker.io/library/alpine:3.20')
      .example('$0 validate alpine:3.20 --check-registry', 'Also resolves it to a digest')
      .example('$0 validate saved.tar --json', 'Format, images, platforms and digests of a tar')
      .example('$0 validate oci:./layout', 'The same for an OCI image layout directory')
      .example('$0 validate ./vm', 'Reads every file of an image directory and checks its sha256'),
  handler: run<Args>(async (ctx, args) => {
    // names `images` shows for archive images (`<path>@<digest>`) before paths: they outlive the archive
    const byName = await cachedByPathName(ctx, args.target);
    if (byName !== undefined) return verifyFiles(ctx, byName);
    const a = await classifyImageArg(args.target);
    if (a.kind === 'path' && a.type !== 'dir') return validateFile(ctx, a.type === 'layout' ? await validateLayout(a.path) : await validateTar(a.path));
    if (a.kind === 'path') {
      if (await stat(join(a.path, CONFIG_FILE)).catch(() => undefined)) return verifyFiles(ctx, await loadFromDir(a.path));
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${a.path} is a directory without ${CONFIG_FILE}: validate checks a reference, an image tar or an image directory`, {
        hint: `vmimg inspect ${args.target} shows an image directory`,
      });
    }
    const cached = a.forced ? undefined : await cachedImage(ctx, a.name);
    if (cached !== undefined) return verifyFiles(ctx, cached);
    const ref = parseReference(a.name);
    const result: Record<string, unknown> = { reference: a.name, canonical: formatReference(ref), ...ref };
    if (args['check-registry']) {
      const { RegistryClient } = await import('../../registry/client.js'); // undici: only for a reference
      const client = new RegistryClient(await ctx.registryOptions(a.name));
      try {
        const desc = await client.resolve(ref, { signal: ctx.signal });
        Object.assign(result, { digest: desc.digest, mediaType: desc.mediaType, size: desc.size });
      } finally {
        await client.close();
      }
    }
    if (ctx.json) ctx.out(JSON.stringify(result));
    else ctx.out((result.digest ? [result.canonical, result.digest, result.mediaType] : [result.canonical]).map((v) => escapeTerminal(String(v))).join('\t'));
  }),
};

async function validateFile(ctx: Context, report: TarReport): Promise<void> {
  if (ctx.json) {
    ctx.out(JSON.stringify(report));
    return;
  }
  ctx.out(escapeTerminal(`${report.path}: ${report.format}, ${report.images.length} image(s)`));
  for (const i of report.images) {
    ctx.out(escapeTerminal(`  ${i.name ?? '(unnamed)'}  ${platformText(i.platform)}  ${i.configDigest}  ${i.layers} layers`));
  }
}

/** A cached image by name or id, without pulling; undefined when the cache has none (then: a reference). */
async function cachedImage(ctx: Context, name: string): Promise<Image | undefined> {
  try {
    return await findImage(ctx.cache, name, ctx.platform);
  } catch (err) {
    if (isVmimgError(err, ErrorCode.NOT_FOUND) || isVmimgError(err, ErrorCode.PLATFORM_MISMATCH)) return undefined;
    throw err;
  }
}

/** Every file of every layer against its index sha256; the first damaged one is ERR_DIGEST_MISMATCH (exit 6). */
async function verifyFiles(ctx: Context, given: Image): Promise<void> {
  let image = given;
  if (hasLazyLayers(given)) {
    // a lazy image's files are fetched (and kept) to be checked: validate reads every one
    const { openLazyImage } = await import('../../lazy/open-image.js'); // the registry client: only for a lazy image
    const lazy = await openLazyImage(given, { ...(await ctx.registryOptions(given.config.source.reference)), signal: ctx.signal, cacheDir: ctx.cache.root });
    ctx.defer(() => lazy.close());
    image = lazy;
  }
  const r = await verifyImage(image, { signal: ctx.signal });
  const id = image.config.source.configDigest;
  if (ctx.json) ctx.out(JSON.stringify({ image: id, dir: image.dir, verified: true, ...r }));
  else ctx.out(`${escapeTerminal(image.dir)}: ${r.layers} layers, ${r.files} files, ${humanBytes(r.bytes)} verified`);
}
