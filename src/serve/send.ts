/**
 * File bytes to a client without a new buffer per chunk: reads go into CHUNK-sized buffers from a small
 * free list, and each goes back on it once the socket has taken its bytes (the write's callback).
 * A fresh 1 MiB buffer per read (createReadStream) made the garbage collector the largest cost of a
 * warm hit in the serve process: ~1 of its ~2.4 CPU-s over a cold and seven warm reads of the bench
 * image (`node --cpu-prof`), external memory forcing full collections of the whole heap.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { drained } from '../util/drained.js';

/** Bytes read per write to a client: 1 MiB kept hits at the upstream registry's speed (256 KiB: ~half). */
export const CHUNK = 1024 * 1024;
/** Reads smaller than this get their own buffer (small blobs: Node's pool serves them). */
const POOLED_FROM = 64 * 1024;
/** Buffers kept for reuse: one per client being answered at once, beyond it they are collected. */
const MAX_FREE = 16;
const free: Buffer[] = [];

/**
 * Reads up to `n` (≤ CHUNK) bytes at `pos` of `fh` and writes them to `res`; resolves with the number
 * sent (0 at the file's end: nothing is written) once `res` takes more, or closes.
 */
export async function sendFromFile(res: ServerResponse, fh: FileHandle, pos: number, n: number): Promise<number> {
  const pooled = n >= POOLED_FROM;
  const buf = pooled ? (free.pop() ?? Buffer.allocUnsafeSlow(CHUNK)) : Buffer.allocUnsafe(n);
  let bytesRead: number;
  try {
    ({ bytesRead } = await fh.read(buf, 0, n, pos));
  } catch (err) {
    recycle(buf, pooled);
    throw err;
  }
  if (bytesRead === 0 || res.destroyed) {
    recycle(buf, pooled);
    return res.destroyed ? 0 : bytesRead;
  }
  // the callback runs once the socket copied the bytes (or failed): only then may the buffer be reused
  const ok = res.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), () => recycle(buf, pooled));
  if (!ok) await drained(res);
  return bytesRead;
}


function recycle(buf: Buffer, pooled: boolean): void {
  if (pooled && free.length < MAX_FREE) free.push(buf);
}
