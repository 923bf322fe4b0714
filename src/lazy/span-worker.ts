/**
 * Worker thread entry of the span pool (span-pool.ts): verifies, inflates and writes the spans of one
 * range request, so neither the inflate nor its output buffers touch the reader's thread and heap.
 * Message in: {@link SpanRun} (its `bytes` transferred). Out per span: `{ id, span }` once its bytes are
 * in `.contents`, or `{ id, span, error: { code, message, details } }` (the run stops there); then `{ id, done }`.
 */
import { parentPort } from 'node:worker_threads';
import { writePlanSync } from './placed-files.js';
import { inflateSpanRecord } from './span-inflate.js';
import type { SpanRun } from './span-pool.js';

const port = parentPort!;

port.on('message', (run: SpanRun) => {
  for (const s of run.spans) {
    try {
      const tar = inflateSpanRecord(s.record, run.bytes.subarray(s.record.cStart - run.start, s.record.cEnd - run.start)); // verifies first
      writePlanSync(run.fd, tar, s.plan);
      port.postMessage({ id: run.id, span: s.record.i });
    } catch (err) {
      const e = err as { code?: string; message?: string; details?: unknown };
      port.postMessage({ id: run.id, span: s.record.i, error: { code: e.code ?? 'ERR_INTERNAL', message: e.message ?? String(err), details: e.details } });
      return;
    }
  }
  port.postMessage({ id: run.id, done: true });
});
