/**
 * Worker thread entry: builds a `.zran` from the blob chunks the parent posts (src/lazy/build.ts), so
 * the checkpoint builder's inflate runs beside the flatten's main thread instead of on it.
 * workerData: `{ options, collect }`; with `collect` the worker is also the flatten's gzip decoder and
 * posts the tar bytes back. Messages in: `{ chunk }` (transferred), `{ end }` (the blob is complete),
 * `{ finish: { digest, diffId } }`. Out: `{ acked, out? }` per chunk (`out` transferred), `{ ended }`,
 * then `{ zran }` (transferred) or `{ error: { code, message } }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CheckpointBuilder, type CheckpointOptions } from './checkpoint-builder.js';
import { encodeZran } from './zran-format.js';

const port = parentPort!;
const { options, collect } = workerData as { options: Partial<CheckpointOptions>; collect: boolean };
const builder = new CheckpointBuilder(options, collect ? { engine: 'native', collect: true } : {});
let failed = false;

port.on('message', (msg: { chunk?: Uint8Array; end?: true; finish?: { digest: string; diffId: string } }) => {
  try {
    if (failed) return;
    if (msg.chunk !== undefined) {
      builder.push(msg.chunk);
      const out = collect ? builder.takeOutput().map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) : undefined;
      port.postMessage({ acked: msg.chunk.length, out }, out ? out.map((u) => u.buffer as ArrayBuffer) : []);
    } else if (msg.end) {
      builder.complete();
      port.postMessage({ ended: true });
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
