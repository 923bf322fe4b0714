/**
 * The inflate pool's worker (inflate-pool.ts): gunzips each open stream with node:zlib's own engine,
 * driven synchronously (`writeSync`) from the stream's input ring into its output ring, so no output
 * buffer is allocated per chunk (zlib's stream API allocates a fresh one per chunk: garbage the main
 * thread's GC then had to chase, issue 13). The engine is the one `zlib.createGunzip()` uses, so
 * multi-member files, trailing zeros and every error behave exactly as they do there.
 */
import { parentPort } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import type { FromInflater, ToInflater } from './inflate-protocol.js';
import { RingCheckpointer } from '../lazy/ring-checkpoints.js';

/** Output bytes per engine call: bounds how long one stream holds the thread between reports. */
const STEP = 1 << 20;

/** zlib's stream object owns the engine; we use its handle directly (see the module comment). */
interface Engine {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number, code: string) => void;
}

interface Stream {
  gunzip: zlib.Gunzip;
  engine: Engine;
  /** [output bytes left, input bytes left] after each call (zlib's own write state). */
  state: Uint32Array;
  input: Uint8Array;
  output: Uint8Array;
  inEnd: number;
  last: boolean;
  limit: number;
  consumed: number;
  produced: number;
  done: boolean;
  error: { message: string; code: string } | undefined;
  /** Checkpoints too: this driver inflates instead of `engine` (src/lazy/ring-checkpoints.ts). */
  checkpoints?: RingCheckpointer;
}

const streams = new Map<number, Stream>();

function open(msg: Extract<ToInflater, { t: 'open' }>): void {
  // writeSync writes our ring, never the stream's own output buffer: the smallest one (a default 16 KiB
  // per layer, freed only by this isolate's rare GC, was ~20 KiB of RSS kept per gzip layer)
  const gunzip = zlib.createGunzip({ chunkSize: zlib.constants.Z_MIN_CHUNK });
  const internals = gunzip as unknown as { _handle: Engine; _writeState: Uint32Array };
  const s: Stream = {
    gunzip,
    engine: internals._handle,
    state: internals._writeState,
    input: new Uint8Array(msg.input, 0, msg.inputSize),
    output: new Uint8Array(msg.output, msg.outputOffset, msg.outputSize),
    inEnd: 0,
    last: false,
    limit: msg.outputSize,
    consumed: 0,
    produced: 0,
    done: false,
    error: undefined,
  };
  // called synchronously by writeSync when zlib refuses the data
  s.engine.onerror = (message, _errno, code) => (s.error = { message, code });
  if (msg.checkpoints) s.checkpoints = new RingCheckpointer(s.input, s.output, msg.checkpoints);
  streams.set(msg.id, s);
}

/** One engine call; false when the stream cannot go on (needs input or room, ended, failed). */
function step(s: Stream): boolean {
  if (s.checkpoints) return s.checkpoints.step(s);
  const avail = s.inEnd - s.consumed;
  const room = s.limit - s.produced;
  if (s.done || s.error || room === 0 || (avail === 0 && !s.last)) return false;
  const inPos = s.consumed % s.input.length;
  const inLen = Math.min(avail, s.input.length - inPos);
  const outPos = s.produced % s.output.length;
  const outLen = Math.min(room, s.output.length - outPos, STEP);
  const final = s.last && inLen === avail; // everything left is in this call: finish (and check the end)
  s.engine.writeSync(final ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH, s.input, inPos, inLen, s.output, outPos, outLen);
  if (s.error) return false;
  const outLeft = s.state[0]!;
  s.produced += outLen - outLeft;
  if (outLeft === 0) {
    s.consumed += inLen - s.state[1]!; // output full: the rest of the input waits for room
  } else {
    // Output to spare: zlib took all it will of this input. Bytes left after the gzip stream's end
    // are dropped, as zlib's Gunzip stream drops them.
    s.consumed += inLen;
    if (final) s.done = true;
  }
  return !s.done;
}

function report(id: number, s: Stream): void {
  const index = s.done ? s.checkpoints?.indexResult() : undefined;
  const msg: FromInflater = { id, consumed: s.consumed, produced: s.produced, ...(s.done ? { done: true } : {}), ...(s.error ? { error: s.error } : {}), ...(index ? { index } : {}) };
  parentPort!.postMessage(msg);
}

/** Runs a stream while it can, reporting after each call so the main thread reads as bytes come. */
function pump(id: number, s: Stream): void {
  for (;;) {
    const before = s.produced + s.consumed;
    const more = step(s);
    const moved = s.produced + s.consumed !== before;
    if (moved || s.done || s.error) report(id, s);
    if (!more || !moved) break;
  }
  if (s.done || s.error) close(id, s);
}

function close(id: number, s: Stream): void {
  streams.delete(id);
  s.gunzip.close();
  s.checkpoints?.close();
}

parentPort!.on('message', (msg: ToInflater) => {
  if (msg.t === 'open') return open(msg);
  const s = streams.get(msg.id);
  if (msg.t === 'close') {
    if (s !== undefined) close(msg.id, s);
    // confirmed even when it ended by itself meanwhile: the pool then reuses the rings
    return parentPort!.postMessage({ id: msg.id, consumed: 0, produced: 0, closed: true } satisfies FromInflater);
  }
  if (s === undefined) return; // ended or closed already
  if (msg.t === 'in') {
    s.inEnd = msg.end;
    s.last = msg.last;
  } else s.limit = msg.limit;
  pump(msg.id, s);
});
