/**
 * Worker thread entry: builds a `.zran` from the blob chunks the parent posts (src/lazy/build.ts), so
 * pako's JavaScript inflate runs beside the native flatten instead of on the main thread.
 * Messages in: `{ chunk }` (transferred), `{ finish: { digest, diffId } }`. Out: `{ acked }` per chunk,
 * then `{ zran }` (transferred) or `{ error: { code, message } }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CheckpointBuilder, type CheckpointOptions } from './checkpoint-builder.js';
import { encodeZran } from './zran-format.js';

const port = parentPort!;
const builder = new CheckpointBuilder(workerData as Partial<CheckpointOptions>);
let failed = false;

port.on('message', (msg: { chunk?: Uint8Array; finish?: { digest: string; diffId: string } }) => {
  try {
    if (failed) return;
    if (msg.chunk !== undefined) {
      builder.push(msg.chunk);
      port.postMessage({ acked: msg.chunk.length });
    } else if (msg.finish !== undefined) {
      const zran = encodeZran(builder.finish(msg.finish));
      const bytes = new Uint8Array(zran.buffer, zran.byteOffset, zran.byteLength);
      port.postMessage({ zran: bytes }, [bytes.buffer as ArrayBuffer]);
    }
  } catch (err) {
    failed = true;
    const e = err as { code?: string; message?: string };
    port.postMessage({ error: { code: e.code ?? 'ERR_INTERNAL', message: e.message ?? String(err) } });
  }
});
