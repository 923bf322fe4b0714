/**
 * `vmimg export DIR IMAGE --format oci`: the image's manifest, config and blobs copied byte for byte
 * into an OCI image layout directory (created, or added to when DIR already is one), named in
 * index.json by IMAGE's tag (`latest` when it has none). A push whose sink is a directory.
 */
import { pushImage } from '../push/push.js';
import { OciLayoutSink } from '../push/sinks.js';
import type { PushEvent } from '../push/types.js';
import { parseReference } from '../reference/index.js';
import { RegistryClient } from '../registry/client.js';
import type { Context } from './context.js';
import { escapeTerminal } from './escape.js';
import { openPushSource } from './push-source.js';

/** Exports IMAGE (default: the most recent cached image) into the layout `dir`; prints what it wrote. */
export async function exportOciLayout(ctx: Context, dir: string, image: string | undefined, onEvent?: (e: PushEvent) => void): Promise<void> {
  const client = new RegistryClient(await ctx.registryOptions());
  const sink = new OciLayoutSink(dir);
  const refName = refNameOf(image);
  const source = await openPushSource(ctx, client, image, {}).catch(async (err: unknown) => {
    await client.close();
    throw err;
  });
  try {
    const result = await pushImage(source, sink, { tag: refName, signal: ctx.signal, ...(onEvent ? { onEvent } : {}) });
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

/** The tag of IMAGE when it reads as a reference with one; `latest` otherwise (paths, ids, digests). */
function refNameOf(image: string | undefined): string {
  if (image === undefined || /^(\/|\.|~|oci:|oci-archive:|docker-archive:)/.test(image) || /\.(tar|tgz|tar\.gz)$/.test(image)) return 'latest';
  try {
    return parseReference(image.replace(/^docker:\/\//, '')).tag ?? 'latest';
  } catch {
    return 'latest';
  }
}
