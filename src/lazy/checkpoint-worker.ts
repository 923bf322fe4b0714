/**
 * Worker thread entry: builds a `.zran` from the blob chunks the parent posts (src/lazy/build.ts:
 * `vmimg index build`, serve's prepare, pako beside a pull's flatten), off the main thread. (A pull's
 * own checkpoints are built in the inflate worker instead: ring-checkpoints.ts.)
 * workerData: `{ options }`. Messages in: `{ chunk }` (transferred), `{ finish: { digest, diffId } }`.
 * Out: `{ acked }` per chunk, then `{ zran }` (transferred) or `{ error: { code, message } }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CheckpointBuilder, type CheckpointOptions } from './checkpoint-builder.js';
import { encodeZran } from './zran-format.js';

const port = parentPort!;
const { options } = workerData as { options: Partial<CheckpointOptions> };
const builder = new CheckpointBuilder(options);
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
