/**
 * File bytes to a client without a new buffer per chunk: reads go into blocks of the process's pool
 * (util/block-pool.ts), each released once the socket has taken its bytes (the write's callback).
 * A fresh 1 MiB buffer per read (createReadStream) made the garbage collector the largest cost of a
 * warm hit in the serve process: ~1 of its ~2.4 CPU-s over a cold and seven warm reads of the bench
 * image (`node --cpu-prof`), external memory forcing full collections of the whole heap.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { drained } from '../util/drained.js';
import { POOL_BLOCK_BYTES, sharedBlockPool } from '../util/block-pool.js';

/** Bytes read per write to a client: 1 MiB kept hits at the upstream registry's speed (256 KiB: ~half). */
export const CHUNK = POOL_BLOCK_BYTES;
/** Reads smaller than this get their own buffer (small blobs: Node's pool serves them). */
const POOLED_FROM = 64 * 1024;

/**
 * Reads up to `n` (≤ CHUNK) bytes at `pos` of `fh` and writes them to `res`; resolves with the number
 * sent (0 at the file's end: nothing is written) once `res` takes more, or closes.
 */
export async function sendFromFile(res: ServerResponse, fh: FileHandle, pos: number, n: number): Promise<number> {
  const pooled = n >= POOLED_FROM;
  const buf = pooled ? sharedBlockPool().take() : Buffer.allocUnsafe(n);
  let bytesRead: number;
  try {
    ({ bytesRead } = await fh.read(buf, 0, n, pos));
  } catch (err) {
    sharedBlockPool().release(buf);
    throw err;
  }
  if (bytesRead === 0 || res.destroyed) {
    sharedBlockPool().release(buf);
    return res.destroyed ? 0 : bytesRead;
  }
  // the callback runs once the socket copied the bytes (or failed): only then may the buffer be reused
  const ok = res.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), () => sharedBlockPool().release(buf));
  if (!ok) await drained(res);
  return bytesRead;
}

