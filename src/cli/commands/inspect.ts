import type { CommandModule } from 'yargs';
import { RegistryBlobReader } from '../../content/registry.js';
import { listPlatforms as platformsOf } from '../../content/walk.js';
import { loadFromDir } from '../../image/image-dir.js';
import { validateLayout, validateTar } from '../../image/validate.js';
import { formatPlatform } from '../../platform/index.js';
import { parseReference } from '../../reference/index.js';
import { classifyImageArg } from '../image-arg.js';
import type { Context, GlobalArgs } from '../context.js';
import { humanBytes, platformText, plural, shortDigest } from '../format.js';
import { resolveImage, type ResolvedImage } from '../resolve-image.js';
import { imagePlatform, run } from './common.js';
import { escapeTerminal } from '../escape.js';

interface Args {
  image: string;
  platforms?: boolean;
}

export const inspectCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'inspect <image>',
  describe: "Show an image's runtime config, layers and digests",
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .option('platforms', { type: 'boolean', describe: 'List the platforms a registry image (or tar) offers, without pulling' })
      .example('$0 inspect alpine:3.20', 'Entrypoint, cmd, env, user, layers')
      .example('$0 inspect alpine:3.20 --platforms', 'Which architectures the tag offers')
      .example('$0 inspect ./vm --json', 'The runtime config as JSON'),
  handler: run<Args>(async (ctx, args) => {
    if (args.platforms) return listPlatforms(ctx, args.image);
    printInspect(ctx, await resolveImage(ctx, args.image));
  }),
};

async function listPlatforms(ctx: Context, arg: string): Promise<void> {
  let rows: { platform: string; digest?: string }[];
  const a = await classifyImageArg(arg);
  if (a.kind === 'path' && a.type !== 'dir') {
    const report = a.type === 'layout' ? await validateLayout(a.path) : await validateTar(a.path);
    rows = report.images.map((i) => ({ platform: platformText(i.platform), ...(i.manifestDigest ? { digest: i.manifestDigest } : {}) }));
  } else if (a.kind === 'path') {
    rows = [{ platform: imagePlatform(await loadFromDir(a.path)) }]; // an image directory holds one image
  } else {
    const ref = parseReference(a.name);
    const { RegistryClient } = await import('../../registry/client.js'); // undici: only for a reference
    const client = new RegistryClient(await ctx.registryOptions(arg));
    try {
      const entries = await platformsOf(new RegistryBlobReader(client, ref), { signal: ctx.signal });
      rows = entries.map((e) => ({ platform: e.platform ? platformText(formatPlatform(e.platform)) : 'unknown', digest: e.descriptor.digest }));
    } finally {
      await client.close();
    }
  }
  if (ctx.json) ctx.out(JSON.stringify({ reference: arg, platforms: rows }));
  else for (const r of rows) ctx.out(escapeTerminal(r.platform) + (r.digest ? `\t${escapeTerminal(r.digest)}` : ''));
}

function printInspect(ctx: Context, resolved: ResolvedImage): void {
  const { image } = resolved;
  const c = image.config;
  if (ctx.json) {
    ctx.out(JSON.stringify({ id: c.source.configDigest, names: resolved.names, dir: image.dir, platform: imagePlatform(image), config: c }));
    return;
  }
  const lines = [
    `id:          ${c.source.configDigest}`,
    `names:       ${resolved.names.join(', ') || '(none)'}`,
    `platform:    ${imagePlatform(image)}`,
    `dir:         ${image.dir}`,
    `source:      ${c.source.kind}${c.source.reference ? ` ${c.source.reference}` : ''}`,
    ...(c.source.indexDigest ? [`index:       ${c.source.indexDigest}`] : []),
    ...(c.source.manifestDigest ? [`manifest:    ${c.source.manifestDigest}`] : []),
    `entrypoint:  ${JSON.stringify(c.entrypoint)}`,
    `cmd:         ${JSON.stringify(c.cmd)}`,
    `workingDir:  ${c.workingDir}`,
    `user:        ${c.user ? `${c.user} ` : ''}(uid ${c.uid}, gid ${c.gid}${c.user ? '' : '; the image names no user'})`,
    ...(c.env.length > 0 ? ['env:', ...c.env.map((e) => `  ${e}`)] : ['env:         (none)']),
    ...(Object.keys(c.labels).length > 0 ? ['labels:', ...Object.entries(c.labels).map(([k, v]) => `  ${k}=${v}`)] : []),
    `layers:      ${c.layerDetails.length} (${humanBytes(c.layerDetails.reduce((s, l) => s + l.size, 0))} of content)`,
    ...c.layerDetails.map(
      (l, i) =>
        `  ${i + 1}. ${l.diffId}  ${humanBytes(l.size)}, ${plural(l.entries, 'entry', 'entries')}` +
        (l.compressedSize !== undefined ? `, ${humanBytes(l.compressedSize)} compressed` : '') +
        (l.digest !== undefined ? `, blob ${shortDigest(l.digest)}` : ''),
    ),
  ];
  for (const line of lines) ctx.out(escapeTerminal(line));
}
