/**
 * Download a blob into the store and hand the same bytes to a consumer (the flattener) as they arrive,
 * so a layer converts while it downloads instead of after. The store stays the source of truth: it
 * verifies, resumes, retries and renames as usual, and passes each chunk on once it is in the partial
 * file (FetchOptions.onData). When the byte stream can't continue seamlessly — a resumed partial from
 * an earlier run, a server that ignored Range, a restart from 0, another process fetching the blob —
 * the consumer's stream fails with `details.reopen = true` and the caller reads the blob from the store
 * once the download has finished.
 *
 * The bytes teed are not verified yet, so a consumer that fails on them must wait for `done` before
 * blaming the content: the store's verdict (ERR_DIGEST_MISMATCH, or a recovered blob) comes first.
 */
import { PassThrough, Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { BlobStore, FetchOptions, FetchResult, RangeOpener } from '../store/index.js';
import { drained } from '../util/drained.js';

/** A download under way and its bytes as they arrive. */
export interface TeeDownload {
  /** The blob's bytes from 0, while they download. */
  stream: Readable;
  /** Settles when the blob is in the store (or the download failed). */
  done: Promise<FetchResult>;
  /**
   * The store's verdict on what was teed: resolves true when every byte passed on is a byte of the
   * verified blob, false when the store had to replace some (it restarted after a bad resumed prefix);
   * rejects with the store's error (ERR_DIGEST_MISMATCH, ...).
   */
  verdict: Promise<boolean>;
}

/** Starts `store.fetchInto(desc, open)` and returns its bytes as a stream from 0 (see the module comment). */
export function teeDownload(
  store: BlobStore,
  desc: { digest: string; size: number },
  open: RangeOpener,
  options: FetchOptions = {},
): TeeDownload {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  // Errors reach the consumer through its own listeners; this one only keeps a late error (after the
  // consumer went away) from becoming an unhandled 'error' event.
  out.on('error', () => undefined);
  let teed = 0;
  let teeing = true;
  let next = 0; // where the store's next chunk should start if it never went back
  let rewound = false;
  const stopTee = (why: string): void => {
    if (!teeing) return;
    teeing = false;
    out.destroy(new VmimgError(ErrorCode.NETWORK, `blob ${desc.digest}: ${why}; reading it from the store instead`, { details: { reopen: true } }));
  };
  out.on('close', () => {
    teeing = false; // the consumer went away: the download carries on into the store
  });

  const onData = async (chunk: Buffer, offset: number): Promise<void> => {
    if (offset !== next) rewound = true;
    next = offset + chunk.length;
    if (!teeing) return;
    if (offset !== teed) return stopTee(`the download continues at byte ${offset}, the stream is at ${teed}`);
    teed += chunk.length;
    if (!out.write(chunk)) await drained(out);
  };

  const done = store.fetchInto(desc, open, { ...options, onData });
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
  const verdict = done.then(() => !rewound);
  verdict.catch(() => undefined); // awaited only when a consumer failed; never an unhandled rejection
  checks.set(out, done);
  return { stream: out, done, verdict };
}

const checks = new WeakMap<Readable, Promise<FetchResult>>();

/**
 * For a stream `teeDownload` returned: the store's download, which checks every byte the stream
 * carries against the blob's digest (it settles after the stream ends, rejecting on a mismatch).
 * A consumer can await it instead of hashing the bytes again. Undefined for any other stream.
 */
export function storeCheck(stream: Readable): Promise<FetchResult> | undefined {
  return checks.get(stream);
}

/** True for the error `teeDownload` uses to say "read it from the store instead". */
export function isReopen(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    if (e instanceof VmimgError && e.details?.reopen === true) return true;
  }
  return false;
}
