/**
 * The one place that reaches into Node's zlib internals: a zlib stream's handle, driven synchronously
 * (`writeSync`) by the checkpoint builder's block inflater (native-block.ts, which also checks them
 * with a self-test before first use) and by the inflate worker's gunzip (src/layer/inflate-worker.ts).
 * Nothing else is imported here, so the inflate worker loads it without the checkpoint code.
 */
import type * as zlib from 'node:zlib';

/**
 * The parts of Node's zlib handle that are driven (lib/zlib.js, src/node_zlib.cc): `writeSync(flush,
 * in, inOff, inLen, out, outOff, outLen)` runs one `inflate()` on the calling thread and calls
 * `onerror(message, errno, code)` synchronously when zlib refuses the data.
 */
export interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number, code: string) => void;
}

/**
 * A zlib stream's handle and write state (`[output bytes left, input bytes left]` after each
 * `writeSync`). Throws an error with code ERR_INTERNAL when this Node's internals differ.
 */
export function zlibInternals(stream: zlib.Gunzip | zlib.InflateRaw): { handle: ZlibHandle; state: Uint32Array } {
  const internals = stream as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
  if (typeof internals._handle?.writeSync !== 'function' || !(internals._writeState instanceof Uint32Array)) {
    throw Object.assign(new Error(`node:zlib internals changed (Node ${process.version}): no _handle.writeSync or _writeState`), { code: 'ERR_INTERNAL' });
  }
  return { handle: internals._handle, state: internals._writeState };
}
