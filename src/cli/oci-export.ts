/**
 * `vmimg export DIR IMAGE --format oci` (or DEST `oci:DIR[:NAME]`): the image's manifest (or with `all`
 * its whole index), config and blobs copied byte for byte into an OCI image layout directory (created,
 * or added to when DIR already is one). A push whose sink is a directory. The image is named in
 * index.json by NAME, else by the source's own name for it (`oci:SRC:TAG`'s TAG, a tar's RepoTag, a
 * reference's tag), else `latest`; a name given to another image is replaced only with `force`.
 */
import { pushImage, type PushResult } from '../push/push.js';
import { OciLayoutSink } from '../push/sinks.js';
import type { PushEvent, PushSource } from '../push/types.js';
import { RegistryClient } from '../registry/client.js';
import type { Context } from './context.js';
import { escapeTerminal } from './escape.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { openPushSource } from './push-source.js';

export interface OciExportOptions {
  /** The ref name from DEST (`oci:DIR:NAME`). */
  readonly refName?: string | undefined;
  /** The whole index the image is listed in (every platform). */
  readonly all?: boolean;
  /** Replace an image of the same ref name. */
  readonly force?: boolean;
  readonly onEvent?: (e: PushEvent) => void;
}

/** Exports IMAGE (default: the most recent cached image) into the layout `dir`; prints what it wrote. */
export async function exportOciLayout(ctx: Context, dir: string, image: string | undefined, options: OciExportOptions = {}): Promise<void> {
  const client = new RegistryClient(await ctx.registryOptions());
  const sink = new OciLayoutSink(dir, { replace: options.force === true });
  const source = await openPushSource(ctx, client, image, { all: options.all === true }).catch(async (err: unknown) => {
    await client.close();
    throw err;
  });
  try {
    const refName = options.refName ?? refNameOf(source.names ?? []) ?? 'latest';
    const result = await copyInto(sink, source, refName, ctx.signal, options.onEvent);
    const d = result.descriptor;
    if (ctx.json) {
      ctx.out(JSON.stringify({ format: 'oci', path: dir, refName, digest: d.digest, mediaType: d.mediaType, size: d.size, blobs: result.blobs, notes: result.notes }));
    } else if (!ctx.quiet) {
      for (const note of result.notes) process.stderr.write(`note: ${escapeTerminal(note)}\n`);
      ctx.out(escapeTerminal(`exported ${d.digest} as an OCI image layout at ${dir} (ref name ${refName}; oci:${dir}:${refName})`));
    }
  } finally {
    await source.close?.();
    await client.close();
  }
}

/** The image checked and copied into the layout; on any failure what this run wrote there is removed. */
async function copyInto(sink: OciLayoutSink, source: PushSource, refName: string, signal: AbortSignal | undefined, onEvent?: (e: PushEvent) => void): Promise<PushResult> {
  try {
    await sink.checkName(source.root.descriptor, refName);
    return await pushImage(source, sink, { tag: refName, signal, ...(onEvent ? { onEvent } : {}) });
  } catch (err) {
    await sink.abort().catch(() => undefined);
    throw err;
  }
}

/** The image-spec's ref name (image-layout.md): alphanum components joined by `[-._:@+]` or `--`, then `/`. */
const COMPONENT = '[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*';
const REF_NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);

/**
 * Refuses a ref name (DEST `oci:DIR:NAME`) outside both the image-spec's ref-name grammar and a Docker
 * tag's (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`), or empty: ERR_INVALID_ARGUMENT naming `dest`. Such a
 * name would be written, but skopeo and other tools could not address it.
 */
export function checkRefName(name: string, dest: string): void {
  if (TAG.test(name) || REF_NAME.test(name)) return;
  throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${dest}: ${name === '' ? 'an empty ref name' : `ref name ${JSON.stringify(name)} is not valid`}`, {
    hint: 'Give a tag such as oci:DIR:v1 (letters, digits and . _ -), or oci:DIR to name it by the source.',
  });
}

/** A valid ref name that is a tag too (the OCI ref-name grammar is wider; a tag fits every tool). */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * The ref name the source's names give: a bare name is a layout's ref name (`7`, `latest`); a
 * reference or RepoTag gives its tag (`busybox:1.36` → `1.36`; none after the last `/` → none).
 */
export function refNameOf(names: readonly string[]): string | undefined {
  for (const name of names) {
    if (TAG.test(name)) return name;
    const bare = name.split('@')[0]!;
    const colon = bare.lastIndexOf(':');
    const tag = colon > bare.lastIndexOf('/') ? bare.slice(colon + 1) : '';
    if (TAG.test(tag)) return tag;
  }
  return undefined;
}
