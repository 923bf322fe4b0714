/** The messages between the inflate pool (inflate-pool.ts) and its workers (inflate-worker.ts). */
import type { CheckpointOptions } from '../lazy/checkpoint-builder.js';
import type { RingIndexResult } from '../lazy/ring-checkpoints.js';

export type ToInflater =
  /**
   * A new gzip stream: compressed bytes arrive in `input` (a ring of `inputSize` bytes from byte 0),
   * tar bytes go to `output` (a hash stream's ring: `outputSize` bytes from `outputOffset`). `crc`
   * false: each member's CRC-32 is not computed (the caller checks the output's sha256, the diff_id).
   */
  | { t: 'open'; id: number; input: SharedArrayBuffer; inputSize: number; output: SharedArrayBuffer; outputOffset: number; outputSize: number; checkpoints?: Partial<CheckpointOptions>; crc?: boolean }
  /** Compressed bytes are in the input ring up to stream offset `end`; `last`: no more will come. */
  | { t: 'in'; id: number; end: number; last: boolean }
  /** Output may be written up to stream offset `limit` (the rest of the ring is still being read). */
  | { t: 'room'; id: number; limit: number }
  /** Stop; the worker confirms (`closed`): only then may the rings serve another stream. */
  | { t: 'close'; id: number };

export interface FromInflater {
  id: number;
  /** Input bytes taken so far (their ring space may be reused). */
  consumed: number;
  /** Output bytes written so far. */
  produced: number;
  /** The gzip stream ended and every output byte is written. */
  done?: true;
  /** zlib refused the data (message and code, e.g. `Z_DATA_ERROR`); the stream is closed. */
  error?: { message: string; code: string };
  /** The answer to a `close`: the worker no longer touches the stream's rings. */
  closed?: true;
  /** With `done`, for a stream opened with `checkpoints` (src/lazy/ring-checkpoints.ts). */
  index?: RingIndexResult;
}
