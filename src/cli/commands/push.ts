import type { CommandModule } from 'yargs';
import { formatReference, parseReference } from '../../reference/index.js';
import { RegistryClient } from '../../registry/client.js';
import { pushImage, type PushResult } from '../../push/push.js';
import { RegistrySink, type RegistrySinkOptions } from '../../push/sinks.js';
import { FileUploadJournal } from '../../push/upload-journal.js';
import type { PushEvent, PushSink, PushSource } from '../../push/types.js';
import type { Context, GlobalArgs } from '../context.js';
import { escapeTerminal } from '../escape.js';
import { humanBytes, shortDigest } from '../format.js';
import { UsageError } from '../exit-codes.js';
import { run } from './common.js';
import { openPushSource } from '../push-source.js';
import { PATH_PREFIXES } from '../image-arg.js';

interface Args {
  src: string;
  tag?: string;
  dest: string;
  all?: boolean;
  concurrency?: number;
  'chunk-size'?: string;
}

export const pushCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'push <src> <dest>',
  describe: 'Copy an image to a registry, byte for byte (blobs the registry has are skipped, same-registry blobs mounted)',
  builder: (y) =>
    y
      .positional('src', { type: 'string', demandOption: true, describe: 'IMAGE: a cached image, a registry reference, an image tar or an OCI layout directory (oci:DIR[:TAG])' })
      .positional('dest', { type: 'string', demandOption: true, describe: 'Registry reference to push to (name[:tag]); an OCI layout is written by export oci:DIR[:NAME]' })
      .option('tag', { type: 'string', describe: 'Which image of a multi-image SRC (tag, ref name, digest), as for load' })
      .option('all', { type: 'boolean', describe: 'Copy the whole image index (every platform), not one platform' })
      .option('concurrency', { type: 'number', describe: 'Blobs uploaded at once (default 3)' })
      .option('chunk-size', { type: 'string', describe: 'Blobs larger than this are uploaded in chunks of it (default 64M)' })
      .example('$0 push alpine:3.20 127.0.0.1:5000/alpine:3.20 --arch arm64', 'One platform of a multi-arch image')
      .example('$0 push alpine:3.20 reg.lan:5000/alpine --all --json', 'The whole index; the result as JSON')
      .example('$0 push saved.tar 127.0.0.1:5000/app:1', 'From a docker save or OCI archive tar (oci:DIR:TAG for a layout)'),
  handler: run<Args>(async (ctx, args) => {
    const dest = destinationRef(args.dest);
    // chunked uploads cut short (even by kill -9) continue at the registry's offset on a rerun
    const journal = new FileUploadJournal(ctx.cache.uploadsDir, dest.registry, dest.repository);
    const sinkOptions: RegistrySinkOptions = { ...(await ctx.registryOptions(formatReference(dest))), ...chunkOption(args['chunk-size']), journal };
    const client = new RegistryClient(await ctx.registryOptions());
    const sink = new RegistrySink(dest, sinkOptions);
    let source: PushSource | undefined;
    try {
      source = await openPushSource(ctx, client, args.src, args);
      const result = await pushImage(source, sink, {
        tag: dest.tag,
        signal: ctx.signal,
        ...(args.concurrency !== undefined ? { concurrency: positive(args.concurrency, '--concurrency') } : {}),
        onEvent: progress(ctx),
      });
      report(ctx, sink, result);
    } finally {
      await source?.close?.();
      await Promise.all([sink.close(), client.close()]);
    }
  }),
};

/**
 * DEST: a registry reference; `docker://` may prefix it. A digest pin is refused (push names a tag), and
 * so is a path prefix (`oci:ol` would otherwise parse as the name `oci` tagged `ol`, on Docker Hub).
 */
function destinationRef(arg: string) {
  const prefix = PATH_PREFIXES.find((p) => arg.startsWith(p));
  if (prefix !== undefined) {
    throw new UsageError(`push DEST ${arg} names a path (${prefix}): push copies to a registry`, { hint: 'write an OCI layout with: vmimg export oci:DIR[:NAME] SRC' });
  }
  const ref = parseReference(arg.replace(/^docker:\/\//, ''));
  if (ref.digest !== undefined) throw new UsageError(`push DEST ${arg} names a digest; name a tag (the pushed digest is printed)`);
  return ref;
}

function chunkOption(text: string | undefined): { chunkBytes?: number } {
  if (text === undefined) return {};
  const m = /^(\d+)([KMG]?)$/i.exec(text.trim());
  if (m === null) throw new UsageError(`--chunk-size takes bytes or 512K, 64M, 1G; not ${text}`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return { chunkBytes: positive(Number(m[1]) * unit, '--chunk-size') };
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number of at least 1, not ${String(n)}`);
  return n;
}

/** One line per blob state change on stderr (JSON lines with --json, nothing with -q). */
function progress(ctx: Context): (e: PushEvent) => void {
  const seen = new Map<string, string>();
  return (e) => {
    if (ctx.quiet) return;
    if (ctx.json) return void process.stderr.write(`${JSON.stringify({ progress: e })}\n`);
    if (e.type === 'manifest') return void process.stderr.write(`manifest ${shortDigest(e.digest)}: pushed${e.tag ? ` as ${escapeTerminal(e.tag)}` : ''}\n`);
    if (e.state === 'checking' || seen.get(e.digest) === e.state) return;
    seen.set(e.digest, e.state);
    process.stderr.write(`blob ${shortDigest(e.digest)} (${humanBytes(e.size)}): ${e.state === 'exists' ? 'already there' : e.state}\n`);
  };
}

function report(ctx: Context, sink: PushSink, result: PushResult): void {
  const summary = {
    pushed: sink.name,
    digest: result.descriptor.digest,
    mediaType: result.descriptor.mediaType,
    size: result.descriptor.size,
    blobs: result.blobs,
    uploadedBytes: result.uploadedBytes,
    notes: result.notes,
  };
  if (ctx.json) return ctx.out(JSON.stringify(summary));
  for (const note of result.notes) process.stderr.write(`note: ${escapeTerminal(note)}\n`);
  if (ctx.quiet) return ctx.out(summary.digest);
  ctx.out(`pushed:   ${escapeTerminal(summary.pushed)}`);
  ctx.out(`digest:   ${summary.digest}`);
  const { uploaded, mounted, exists } = result.blobs;
  ctx.out(`blobs:    ${uploaded} uploaded (${humanBytes(result.uploadedBytes)}), ${mounted} mounted, ${exists} already there`);
}
