/**
 * A blob as one verified stream that survives interruptions: when the connection drops or stalls
 * mid-body, it reopens with `Range: bytes=N-` from the bytes already received (or skips them when the
 * server ignores Range), and checks size and digest over the whole blob.
 */
import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { VerifyingStream } from '../digest/index.js';
import type { Descriptor } from '../manifest/types.js';
import { isRetryableNetworkError, networkError } from './http-errors.js';

export interface OpenedBlob {
  readonly stream: Readable;
  /** Where the stream starts in the blob: the asked-for offset on 206, 0 when the server sent it all. */
  readonly offset: number;
}

export type BlobOpener = (offset: number) => Promise<OpenedBlob>;

export interface ResumeOptions {
  /** Start here (bytes before it already stored elsewhere). Digest checked only when `hasher` covers them. */
  readonly offset?: number;
  /** Hash state covering bytes [0, offset). */
  readonly hasher?: Hash;
  /** Reconnects allowed in a row without progress (default 4). */
  readonly maxResumes?: number;
  readonly signal?: AbortSignal | undefined;
  /** Backoff before a reconnect. */
  readonly backoff: (attempt: number) => number;
  readonly pause: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** For error messages. */
  readonly what: string;
  readonly url?: string;
}

export function resumingBlobStream(desc: Descriptor, open: BlobOpener, options: ResumeOptions): Readable {
  const start = options.offset ?? 0;
  const verify = start === 0 || options.hasher !== undefined;
  const source = Readable.from(chunks(open, start, options), { objectMode: false });
  if (!verify) return source;
  const verifier = new VerifyingStream({
    digest: desc.digest,
    size: desc.size,
    what: options.what,
    ...(options.hasher !== undefined ? { hasher: options.hasher } : {}),
    offset: start,
  });
  source.on('error', (err) => verifier.destroy(err));
  verifier.on('close', () => source.destroy());
  return source.pipe(verifier);
}

async function* chunks(open: BlobOpener, start: number, options: ResumeOptions): AsyncGenerator<Buffer> {
  let received = start;
  let failures = 0;
  for (;;) {
    const opened = await open(received);
    let skip = received - opened.offset;
    const before = received;
    try {
      for await (const raw of opened.stream) {
        let chunk = raw as Buffer;
        if (skip > 0) {
          const drop = Math.min(skip, chunk.length);
          skip -= drop;
          chunk = chunk.subarray(drop);
          if (chunk.length === 0) continue;
        }
        received += chunk.length;
        yield chunk;
      }
      return;
    } catch (err) {
      opened.stream.destroy();
      if (options.signal?.aborted === true || !isRetryableNetworkError(err)) throw networkError(err, options.url ?? '', options.signal);
      failures = received > before ? 1 : failures + 1;
      if (failures > (options.maxResumes ?? 4)) throw networkError(err, options.url ?? '', options.signal);
      await options.pause(options.backoff(failures - 1), options.signal);
    }
  }
}
