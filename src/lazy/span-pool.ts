/**
 * The threads that verify, inflate and place lazily read spans (span-worker.ts): a reader's thread
 * only receives range responses and hands each one over whole (transferred, not copied). Started on
 * first use, one fewer than the cores but at least two: half of a span worker's time is the kernel
 * filling fresh page-cache pages with its writes (on these VMs each fresh page faults a host page,
 * ~13 µs), and a second worker inflates meanwhile (session 13, `perf` of a full lazy read of the 1 GB
 * bench image on 2 cores: one worker 9.9-10.7 s, two 8.8-9.8 s, three 10.7-12.0 s). A worker is
 * referenced only while it has runs, so an idle pool never holds the process open.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ErrorCode, VmimgError, type ErrorCodeValue } from '../errors.js';
import { startWorker } from '../util/worker-thread.js';
import type { WriteGroup } from './placed-files.js';
import type { SpanRecord } from './span-inflate.js';

/** One range response for the worker: blob bytes `[start, start + bytes.length)` holding `spans` in order. */
export interface SpanRun {
  id: number;
  /** The `.contents` file descriptor the spans are written to (held open by the caller until the run settles). */
  fd: number;
  start: number;
  bytes: Uint8Array;
  spans: { record: SpanRecord; plan: WriteGroup[] }[];
}

type Answer = { id: number; span?: number; upTo?: number; done?: true; error?: { code: string; message: string; details?: Record<string, unknown> } };

interface Pending {
  placed: (i: number) => void;
  progress: ((i: number, upTo: number) => void) | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Slot {
  worker: Worker | undefined;
  runs: Map<number, Pending>;
}

const slots: Slot[] = Array.from({ length: Math.max(2, availableParallelism() - 1) }, () => ({ worker: undefined, runs: new Map() }));
let nextId = 1;

/**
 * Verifies, inflates and writes the spans of one range response on a worker; `placed(i)` is called as
 * each span's bytes are in `.contents` (readable, not synced), and before that `progress(i, upTo)` as
 * each 1 MiB of them is (span-worker.ts CHUNK; `upTo` counts from the span's first tar byte). Rejects
 * with the first span's error (ERR_DIGEST_MISMATCH, ERR_INVALID_INDEX, a failed write as ERR_IO); later
 * spans are not placed.
 */
export function placeSpans(run: Omit<SpanRun, 'id'>, placed: (i: number) => void, progress?: (i: number, upTo: number) => void): Promise<void> {
  const slot = slots.reduce((a, b) => (b.runs.size < a.runs.size ? b : a));
  const worker = slot.worker ?? start(slot);
  const id = nextId++;
  let bytes = run.bytes;
  // Only a buffer that is its whole ArrayBuffer can be transferred (small Buffers share a pool).
  if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength || !(bytes.buffer instanceof ArrayBuffer)) bytes = Uint8Array.from(bytes);
  return new Promise<void>((resolve, reject) => {
    if (slot.runs.size === 0) worker.ref();
    slot.runs.set(id, { placed, progress, resolve, reject });
    worker.postMessage({ ...run, id, bytes } satisfies SpanRun, [bytes.buffer as ArrayBuffer]);
  });
}

/**
 * Starts the pool's first worker now, if none is running: a reader calls this as it sends a range
 * request, so the worker's start (~10-20 ms on these 2-core VMs, session 13) overlaps the request
 * instead of following the response. An idle worker is unreferenced: it never holds the process open.
 */
export function warmSpanPool(): void {
  if (slots.every((s) => s.worker === undefined)) start(slots[0]!);
}

function settle(slot: Slot, id: number): Pending | undefined {
  const p = slot.runs.get(id);
  slot.runs.delete(id);
  if (slot.runs.size === 0) slot.worker?.unref();
  return p;
}

function start(slot: Slot): Worker {
  const worker = startWorker(import.meta.url, 'span-worker');
  slot.worker = worker;
  worker.on('message', (msg: Answer) => {
    if (msg.error !== undefined) {
      const e = msg.error;
      const code = (Object.values(ErrorCode) as string[]).includes(e.code) ? (e.code as ErrorCodeValue) : ErrorCode.IO; // a write's errno (ENOSPC, EIO)
      settle(slot, msg.id)?.reject(new VmimgError(code, code === ErrorCode.IO ? `writing lazily read spans: ${e.message}` : e.message, e.details !== undefined ? { details: e.details } : {}));
    } else if (msg.done) settle(slot, msg.id)?.resolve();
    else if (msg.upTo !== undefined) slot.runs.get(msg.id)?.progress?.(msg.span!, msg.upTo);
    else slot.runs.get(msg.id)?.placed(msg.span!);
  });
  const lost = (why: string): void => {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    for (const p of slot.runs.values()) p.reject(new VmimgError(ErrorCode.INTERNAL, `span worker ${why}`));
    slot.runs.clear();
  };
  worker.on('error', (err) => lost(`failed: ${err.message}`));
  worker.on('exit', (code) => lost(`exited (${code})`));
  worker.unref();
  return worker;
}
