/** The messages between the hash pool (hash-pool.ts) and its workers (hash-worker.ts). */

/** Op codes of an `ops` message; each is followed by its numbers. */
export const Op = {
  /** n: the next n bytes of the ring are stream bytes (hashed into the whole-stream digest). */
  Push: 1,
  /** part start end: stream bytes [start, end) go into `part`. */
  Range: 2,
  /** part n: n zero bytes go into `part`. */
  Zeros: 3,
  /** part: `part` is complete; its digest is answered. */
  Digest: 4,
  /** offset: no later op reads stream bytes below offset (their ring space may be reused). */
  Release: 5,
  /** the stream ends: its whole digest is answered ('' when it had none). */
  End: 6,
} as const;

export type ToWorker =
  /** ring: 8 bytes of control (an Int32 cancel flag) then the ring's bytes. */
  | { t: 'open'; id: number; ring: SharedArrayBuffer; whole: boolean }
  | { t: 'ops'; id: number; ops: number[] }
  | { t: 'close'; id: number };

export interface FromWorker {
  id: number;
  /** Ring bytes freed by this message (pushed and released). */
  freed: number;
  /** part, hex, part, hex, ... */
  digests: (number | string)[];
  whole?: string;
  /** The answer to `close`: the worker no longer reads the stream's ring. */
  closed?: true;
}
