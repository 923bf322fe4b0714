/**
 * Worker thread entry of the span pool (span-pool.ts): verifies, inflates and writes the spans of one
 * range request, so neither the inflate nor its output buffers touch the reader's thread and heap.
 * Message in: {@link SpanRun} (its `bytes` transferred). Out per span: `{ id, span, upTo }` each time
 * another {@link CHUNK} of its tar bytes is in `.contents` (`upTo`: how many, from the span's start),
 * then `{ id, span }` once all are, or `{ id, span, error: { code, message, details } }` (the run stops
 * there); then `{ id, done }`.
 */
import { parentPort } from 'node:worker_threads';
import { writePlanPartSync } from './placed-files.js';
import { inflateSpanChunks } from './span-inflate.js';
import type { SpanRun } from './span-pool.js';

/** Tar bytes inflated and written at a time: a reader of a span's first bytes waits for this much, not the span's 4 MiB. */
export const CHUNK = 1 << 20;

const port = parentPort!;
const out = Buffer.allocUnsafe(CHUNK); // reused: a fresh 4 MiB output per span cost its page faults each time

port.on('message', (run: SpanRun) => {
  for (const s of run.spans) {
    try {
      const compressed = run.bytes.subarray(s.record.cStart - run.start, s.record.cEnd - run.start);
      inflateSpanChunks(s.record, compressed, out, (chunk, at) => { // verifies first
        writePlanPartSync(run.fd, chunk, at, s.plan);
        if (at + chunk.length < s.record.want) port.postMessage({ id: run.id, span: s.record.i, upTo: at + chunk.length });
      });
      port.postMessage({ id: run.id, span: s.record.i });
    } catch (err) {
      const e = err as { code?: string; message?: string; details?: unknown };
      port.postMessage({ id: run.id, span: s.record.i, error: { code: e.code ?? 'ERR_INTERNAL', message: e.message ?? String(err), details: e.details } });
      return;
    }
  }
  port.postMessage({ id: run.id, done: true });
});
