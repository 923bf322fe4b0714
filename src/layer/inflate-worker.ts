/**
 * The inflate pool's worker (inflate-pool.ts): gunzips each open stream with node:zlib's own engine,
 * driven synchronously (`writeSync`) from the stream's input ring into its output ring, so no output
 * buffer is allocated per chunk (zlib's stream API allocates a fresh one per chunk: garbage the main
 * thread's GC then had to chase, issue 13). The engine is the one `zlib.createGunzip()` uses, so
 * multi-member files, trailing zeros and every error behave exactly as they do there. A stream opened
 * with `checkpoints` (`pull --index-build`) is inflated by src/lazy/ring-checkpoints.ts instead, which
 * builds the layer's gzip checkpoints in the same inflate; that module loads on first use only.
 */
import { parentPort } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import type { FromInflater, ToInflater } from './inflate-protocol.js';
import type { RingCheckpointer, RingStreamState } from '../lazy/ring-checkpoints.js';
// zlib's stream object owns the engine; we use its handle directly (the one module that knows how)
import { zlibInternals, type ZlibHandle } from '../lazy/zlib-internals.js';
import { CUT_SHORT, GzipFraming } from './gzip-framing.js';

/** Output bytes per engine call: bounds how long one stream holds the thread between reports. */
const STEP = 1 << 20;

/** A stream: its rings, engine and (RingStreamState) how far input, output and room have come. */
interface Stream extends RingStreamState {
  /** The engine's owner: a Gunzip, or an InflateRaw when `framing` reads the gzip framing here. */
  gunzip: zlib.Gunzip | zlib.InflateRaw;
  /** Set when the output's CRC-32 is not wanted (the open message's `crc` false): see gzip-framing.ts. */
  framing: GzipFraming | undefined;
  engine: ZlibHandle;
  /** [output bytes left, input bytes left] after each call (zlib's own write state). */
  state: Uint32Array;
  input: Uint8Array;
  output: Uint8Array;
  /** Checkpoints too: this driver inflates instead of `engine` (src/lazy/ring-checkpoints.ts). */
  checkpoints?: RingCheckpointer;
}

const streams = new Map<number, Stream>();

function open(msg: Extract<ToInflater, { t: 'open' }>): void {
  // writeSync writes our ring, never the stream's own output buffer: the smallest one (a default 16 KiB
  // per layer, freed only by this isolate's rare GC, was ~20 KiB of RSS kept per gzip layer)
  const size = { chunkSize: zlib.constants.Z_MIN_CHUNK };
  const gunzip = msg.crc === false ? zlib.createInflateRaw(size) : zlib.createGunzip(size);
  const internals = zlibInternals(gunzip);
  const s: Stream = {
    gunzip,
    framing: msg.crc === false ? new GzipFraming() : undefined,
    engine: internals.handle,
    state: internals.state,
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
  // woken when its side work (span digests, window deflates: other threads) lets it go on
  if (msg.checkpoints && checkpointing) s.checkpoints = new checkpointing.RingCheckpointer(s.input, s.output, msg.checkpoints, () => void (streams.get(msg.id) === s && pump(msg.id, s)));
  else if (msg.checkpoints) s.error = { message: `loading the checkpoint builder: ${loadError}`, code: 'ERR_INTERNAL' };
  streams.set(msg.id, s);
}

/**
 * Without CRC-32: framing bytes are read here, deflate data by the raw engine. A call that stops with
 * input and output room left, or makes no progress at all, has reached the end of the member's data.
 */
function stepRaw(s: Stream, f: GzipFraming): boolean {
  if (s.done || s.error) return false;
  const before = s.consumed;
  while (f.phase !== 'deflate' && s.consumed < s.inEnd && f.error === undefined) {
    if (f.phase === 'ended') s.consumed = s.inEnd; // padding and what follows it: dropped
    else if (f.byte(s.input[s.consumed++ % s.input.length]!, s.produced) && f.members > 0) (s.engine as unknown as { reset(): void }).reset(); // the next member
  }
  if (f.error !== undefined) return void (s.error = f.error), false;
  const avail = s.inEnd - s.consumed;
  if (avail === 0 && s.last) {
    if (f.complete) s.done = true;
    else s.error = CUT_SHORT;
    return false;
  }
  const room = s.limit - s.produced;
  if (f.phase !== 'deflate' || avail === 0 || room === 0) return s.consumed !== before;
  const inPos = s.consumed % s.input.length;
  const inLen = Math.min(avail, s.input.length - inPos);
  const outPos = s.produced % s.output.length;
  const outLen = Math.min(room, s.output.length - outPos, STEP);
  s.engine.writeSync(zlib.constants.Z_NO_FLUSH, s.input, inPos, inLen, s.output, outPos, outLen);
  if (s.error) return false;
  const took = inLen - s.state[1]!;
  const made = outLen - s.state[0]!;
  s.consumed += took;
  s.produced += made;
  if ((took === 0 && made === 0) || (s.state[0]! > 0 && s.state[1]! > 0)) f.deflateEnded(s.produced);
  return true;
}

/** One engine call; false when the stream cannot go on (needs input or room, ended, failed). */
function step(s: Stream): boolean {
  if (s.checkpoints) return s.checkpoints.step(s);
  if (s.framing !== undefined) return stepRaw(s, s.framing);
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

/**
 * Runs a stream while it can, reporting after each call so the main thread reads as bytes come. A
 * member's deflate data seen to end moves no byte but is progress too: its trailer is read next. (Not
 * counting it lost that wake-up when the data ended exactly at the call's output room: the next call
 * took and made nothing, the loop stopped, and with all input announced nothing woke it again;
 * test/layer/inflate-exact-end.test.ts.)
 */
function pump(id: number, s: Stream): void {
  const mark = (): number => s.produced + s.consumed + (s.framing?.ends ?? 0);
  for (;;) {
    const before = mark();
    const more = step(s);
    const moved = mark() !== before;
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

let checkpointing: typeof import('../lazy/ring-checkpoints.js') | undefined;
/** Messages that came while the checkpointing module loads (~20 ms no plain pull should pay at start). */
let waiting: ToInflater[] | undefined;
let loadError: string | undefined;

parentPort!.on('message', (msg: ToInflater) => {
  if (waiting !== undefined) return void waiting.push(msg);
  if (msg.t === 'open' && msg.checkpoints && checkpointing === undefined) {
    waiting = [msg];
    void import('../lazy/ring-checkpoints.js')
      .then((m) => (checkpointing = m), (err: Error) => (loadError = err.message))
      .finally(() => {
        const queued = waiting!;
        waiting = undefined;
        for (const m of queued) handle(m);
      });
    return;
  }
  handle(msg);
});

function handle(msg: ToInflater): void {
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
}
