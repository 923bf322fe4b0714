import type { CommandModule } from 'yargs';
import { ErrorCode, RegistryClient, VmimgError, formatReference, parseReference, validateTar } from '../../index.js';
import { classifyImageArg } from '../image-arg.js';
import type { Context, GlobalArgs } from '../context.js';
import { run } from './common.js';
import { escapeTerminal } from '../escape.js';

interface Args {
  target: string;
  'check-registry'?: boolean;
}

export const validateCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'validate <target>',
  describe: 'Check a reference (grammar, and with --check-registry that it exists) or what an image tar holds',
  builder: (y) =>
    y
      .positional('target', { type: 'string', demandOption: true, describe: 'REF or TAR' })
      .option('check-registry', { type: 'boolean', describe: 'Also ask the registry that the reference exists' })
      .example('$0 validate alpine:3.20', 'Prints docker.io/library/alpine:3.20')
      .example('$0 validate alpine:3.20 --check-registry', 'Also resolves it to a digest')
      .example('$0 validate saved.tar --json', 'Format, images, platforms and digests of a tar'),
  handler: run<Args>(async (ctx, args) => {
    const a = await classifyImageArg(args.target);
    if (a.kind === 'path' && a.type === 'file') return validateFile(ctx, a.path);
    if (a.kind === 'path') {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${a.path} is a directory: validate checks a reference or an image tar`, {
        hint: `vmimg inspect ${args.target} shows an image directory`,
      });
    }
    const ref = parseReference(a.name);
    const result: Record<string, unknown> = { reference: a.name, canonical: formatReference(ref), ...ref };
    if (args['check-registry']) {
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

async function validateFile(ctx: Context, path: string): Promise<void> {
  const report = await validateTar(path);
  if (ctx.json) {
    ctx.out(JSON.stringify(report));
    return;
  }
  ctx.out(escapeTerminal(`${report.path}: ${report.format}, ${report.images.length} image(s)`));
  for (const i of report.images) {
    ctx.out(escapeTerminal(`  ${i.name ?? '(unnamed)'}  ${i.platform}  ${i.configDigest}  ${i.layers} layers`));
  }
}
