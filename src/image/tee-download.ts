/**
 * Download a blob into the store and hand the same bytes to a consumer (the flattener) as they arrive,
 * so a layer converts while it downloads instead of after. The store stays the source of truth: it
 * verifies, resumes and renames as usual. When the byte stream can't continue seamlessly — a resumed
 * partial from an earlier run, a server that ignored Range, another process fetching the blob — the
 * consumer's stream fails with `details.reopen = true` and the caller reads the blob from the store once
 * the download has finished.
 */
import { PassThrough, Readable, Transform } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { BlobStore, FetchOptions, FetchResult, RangeOpener } from '../store/index.js';

export interface TeeDownload {
  /** The blob's bytes from 0, while they download. */
  stream: Readable;
  /** Settles when the blob is in the store (or the download failed). */
  done: Promise<FetchResult>;
}

export function teeDownload(
  store: BlobStore,
  desc: { digest: string; size: number },
  open: RangeOpener,
  options: FetchOptions = {},
): TeeDownload {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let teed = 0;
  let teeing = true;
  const stopTee = (why: string): void => {
    if (!teeing) return;
    teeing = false;
    out.destroy(new VmimgError(ErrorCode.NETWORK, `blob ${desc.digest}: ${why}; reading it from the store instead`, { details: { reopen: true } }));
  };
  out.on('close', () => {
    teeing = false; // the consumer went away: the download carries on into the store
  });

  const forward = (): Transform =>
    new Transform({
      transform(chunk: Buffer, _enc, callback) {
        if (!teeing) return callback(null, chunk);
        teed += chunk.length;
        if (out.write(chunk)) return callback(null, chunk);
        const resume = (): void => {
          out.off('drain', resume);
          out.off('close', resume);
          callback(null, chunk);
        };
        out.on('drain', resume);
        out.on('close', resume);
      },
    });

  const tapped: RangeOpener = async (offset, signal) => {
    const opened = await open(offset, signal);
    if (!teeing) return opened;
    if (opened.offset !== teed) {
      stopTee(`the download continues at byte ${opened.offset}, the stream is at ${teed}`);
      return opened;
    }
    const body = opened.stream instanceof Readable ? opened.stream : Readable.from(opened.stream);
    const tap = forward();
    body.on('error', (err) => tap.destroy(err));
    return { stream: body.pipe(tap), offset: opened.offset };
  };

  const done = store.fetchInto(desc, tapped, options);
  done.then(
    () => {
      if (!teeing) return;
      if (teed === desc.size) out.end();
      else stopTee('the blob arrived by another way (another process fetched it)');
    },
    (err: unknown) => {
      if (teeing) out.destroy(err as Error);
      teeing = false;
    },
  );
  return { stream: out, done };
}

/** True for the error `teeDownload` uses to say "read it from the store instead". */
export function isReopen(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    if (e instanceof VmimgError && e.details?.reopen === true) return true;
  }
  return false;
}
