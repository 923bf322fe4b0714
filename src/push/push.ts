/**
 * pushImage: copies an image from a PushSource to a PushSink byte for byte. Blobs first (HEAD, then a
 * cross-repository mount when source and sink are one registry, else an upload), each verified; then
 * child manifests by digest; the named manifest or index last, so nothing is published before every
 * blob it references is confirmed. A rerun after an interruption uploads only what is missing.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits } from '../manifest/limits.js';
import { isAttestation } from '../manifest/choose.js';
import { parseManifestDocument } from '../manifest/parse.js';
import type { Descriptor, ImageIndex } from '../manifest/types.js';
import { createLimiter } from '../util/limiter.js';
import type { BlobOutcome, PushEvent, PushSink, PushSource } from './types.js';

export interface PushOptions {
  /** Tag at the destination; undefined pushes by digest only. */
  readonly tag?: string | undefined;
  /** Blobs in flight at once (default 3). */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  readonly onEvent?: (event: PushEvent) => void;
}

export interface PushResult {
  /** Descriptor of what was pushed under the tag (a manifest, or the index with `all`). */
  readonly descriptor: Descriptor;
  /** Blobs by what happened to them. */
  readonly blobs: Readonly<Record<BlobOutcome, number>>;
  /** Bytes uploaded (mounted and existing blobs count nothing). */
  readonly uploadedBytes: number;
  readonly notes: readonly string[];
}


/**
 * Copies `source.root` to `sink`: a manifest with its config and layers, or an index with every child
 * (attestations too; open-source.ts chooses which root). See the module comment.
 */
export async function pushImage(source: PushSource, sink: PushSink, options: PushOptions = {}): Promise<PushResult> {
  const counts: Record<BlobOutcome, number> = { exists: 0, mounted: 0, uploaded: 0 };
  // One failed blob stops the others: their uploads are cancelled, not left running after we return.
  const failed = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, failed.signal]) : failed.signal;
  const job: Job = { source, sink, options: { ...options, signal }, counts, uploadedBytes: 0, done: new Map(), failed };
  const { descriptor, bytes } = source.root;
  try {
    await copyDocument(job, descriptor, bytes, 0);
    await sink.putManifest(descriptor, bytes, options.tag, true, options.signal);
  } catch (err) {
    await sink.abort?.().catch(() => undefined); // the push's own error is the one to report
    throw err;
  }
  options.onEvent?.({ type: 'manifest', digest: descriptor.digest, mediaType: descriptor.mediaType, tag: options.tag, state: 'pushed' });
  return { descriptor, blobs: counts, uploadedBytes: job.uploadedBytes, notes: source.notes ?? [] };
}

interface Job {
  readonly source: PushSource;
  readonly sink: PushSink;
  readonly options: PushOptions;
  readonly counts: Record<BlobOutcome, number>;
  uploadedBytes: number;
  /** Blobs already handled in this push (an index's children share layers). */
  readonly done: Map<string, Promise<void>>;
  readonly failed: AbortController;
}

/** Everything a manifest or index references, in the sink, before the document itself. */
async function copyDocument(job: Job, descriptor: Descriptor, bytes: Buffer, depth: number): Promise<void> {
  const doc = parseManifestDocument(bytes, descriptor.mediaType);
  if (doc.kind === 'manifest') {
    const blobs = [doc.manifest.config, ...doc.manifest.layers].filter((d) => !isForeign(d));
    await allOrFirstError(job, blobs, (d) => copyBlobOnce(job, d));
    return;
  }
  if (depth >= documentLimits().maxIndexDepth) throw tooDeep();
  for (const child of children(doc.index)) {
    const childBytes = await job.source.readBytes(child, job.options.signal);
    await copyDocument(job, child, childBytes, depth + 1);
    await job.sink.putManifest(child, childBytes, undefined, false, job.options.signal);
    job.options.onEvent?.({ type: 'manifest', digest: child.digest, mediaType: child.mediaType, state: 'pushed' });
  }
}

/** An index's children, runnable images first (attestations refer to them). */
function children(index: ImageIndex): Descriptor[] {
  return [...index.manifests].sort((a, b) => Number(isAttestation(a)) - Number(isAttestation(b)));
}

/** Non-distributable layers (with `urls`) are not copied, as registries and skopeo do by default. */
function isForeign(d: Descriptor): boolean {
  return d.urls !== undefined && d.urls.length > 0 && /foreign|nondistributable/.test(d.mediaType);
}

/** Runs `fn` over `items` (job.options.concurrency at once); on a failure aborts the rest, waits for them, throws the first error. */
async function allOrFirstError<T>(job: Job, items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  const limit = createLimiter(job.options.concurrency ?? 3);
  const settled = await Promise.allSettled(
    items.map((item) =>
      limit(async () => {
        if (job.failed.signal.aborted) return;
        await fn(item).catch((err: unknown) => {
          job.failed.abort(err);
          throw err;
        });
      }),
    ),
  );
  const first = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (first !== undefined) throw job.failed.signal.reason ?? first.reason;
}

function copyBlobOnce(job: Job, desc: Descriptor): Promise<void> {
  let pending = job.done.get(desc.digest);
  if (pending === undefined) {
    pending = copyBlob(job, desc);
    job.done.set(desc.digest, pending);
  }
  return pending;
}

async function copyBlob(job: Job, desc: Descriptor): Promise<void> {
  const { source, sink, options } = job;
  const event = (state: Extract<PushEvent, { type: 'blob' }>['state'], bytes: number) =>
    options.onEvent?.({ type: 'blob', digest: desc.digest, size: desc.size, state, bytes });
  event('checking', 0);
  if (await sink.has(desc, options.signal)) {
    job.counts.exists++;
    return event('exists', 0);
  }
  const from = source.origin;
  if (sink.mount !== undefined && from !== undefined && from.registry === sink.registry) {
    if (await sink.mount(desc, from.repository, options.signal)) {
      job.counts.mounted++;
      return event('mounted', 0);
    }
  }
  event('uploading', 0);
  await sink.writeBlob(desc, (offset) => source.open(desc, offset, options.signal), (sent) => event('uploading', sent), options.signal, source.verified);
  job.counts.uploaded++;
  job.uploadedBytes += desc.size;
  event('uploaded', desc.size);
}

function tooDeep(): VmimgError {
  return new VmimgError(ErrorCode.INVALID_MANIFEST, `image indexes nested more than ${documentLimits().maxIndexDepth} deep (maxIndexDepth; a loop of indexes would never end)`);
}
