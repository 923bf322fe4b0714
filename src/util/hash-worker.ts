/**
 * The hash pool's worker (hash-pool.ts): keeps one SHA-256 state per open stream and part, reading
 * the bytes from the stream's shared ring. Ops arrive as flat number arrays (cheap to clone):
 * PUSH n · RANGE part start end · ZEROS part n · DIGEST part · RELEASE offset · END.
 * Each message is answered with the ring bytes it freed and the digests it finished.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { Op, type FromWorker, type ToWorker } from './hash-protocol.js';

const ZEROS = new Uint8Array(1 << 20);

interface Stream {
  ring: Uint8Array;
  /** Int32 cancel flag (set by the main thread: stop a long hole or range at once). */
  flag: Int32Array;
  whole: Hash | undefined;
  parts: Map<number, Hash>;
  /** Stream bytes pushed so far, and the release mark: the ring is free below min(both). */
  pushed: number;
  released: number;
}

const streams = new Map<number, Stream>();

/** Feeds stream bytes [start, end) (still in the ring) to `hash`, in at most two pieces at the wrap. */
function feed(s: Stream, hash: Hash, start: number, end: number): void {
  const size = s.ring.length;
  for (let at = start; at < end; ) {
    const pos = at % size;
    const n = Math.min(end - at, size - pos);
    hash.update(s.ring.subarray(pos, pos + n));
    at += n;
  }
}

function zeros(s: Stream, hash: Hash, n: number): void {
  for (let left = n; left > 0 && Atomics.load(s.flag, 0) === 0; left -= ZEROS.length) hash.update(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
}

function part(s: Stream, id: number): Hash {
  let h = s.parts.get(id);
  if (h === undefined) s.parts.set(id, (h = createHash('sha256')));
  return h;
}

/** Runs one message's ops; returns what to answer. */
function run(id: number, s: Stream, ops: number[]): FromWorker {
  const before = Math.min(s.pushed, s.released);
  const digests: (number | string)[] = [];
  let whole: string | undefined;
  for (let i = 0; i < ops.length && Atomics.load(s.flag, 0) === 0; ) {
    switch (ops[i++]) {
      case Op.Push: {
        const n = ops[i++]!;
        if (s.whole) feed(s, s.whole, s.pushed, s.pushed + n);
        s.pushed += n;
        break;
      }
      case Op.Range: {
        const p = ops[i++]!, start = ops[i++]!, end = ops[i++]!;
        feed(s, part(s, p), start, end);
        break;
      }
      case Op.Zeros: {
        const p = ops[i++]!;
        zeros(s, part(s, p), ops[i++]!);
        break;
      }
      case Op.Digest: {
        const p = ops[i++]!;
        digests.push(p, part(s, p).digest('hex'));
        s.parts.delete(p);
        break;
      }
      case Op.Release:
        s.released = Math.max(s.released, ops[i++]!);
        break;
      case Op.End:
        whole = s.whole?.digest('hex') ?? '';
        streams.delete(id);
        break;
      default:
        throw new Error(`hash worker: unknown op ${String(ops[i - 1])}`);
    }
  }
  return { id, freed: Math.min(s.pushed, s.released) - before, digests, ...(whole !== undefined ? { whole } : {}) };
}

parentPort!.on('message', (msg: ToWorker) => {
  if (msg.t === 'open') {
    streams.set(msg.id, { ring: new Uint8Array(msg.ring, 8), flag: new Int32Array(msg.ring, 0, 1), whole: msg.whole ? createHash('sha256') : undefined, parts: new Map(), pushed: 0, released: 0 });
    return;
  }
  if (msg.t === 'close') {
    streams.delete(msg.id);
    parentPort!.postMessage({ id: msg.id, freed: 0, digests: [], closed: true });
    return;
  }
  const s = streams.get(msg.id);
  // every ops message is answered (the pool keeps this thread ref'd until it is), a closed stream's too
  parentPort!.postMessage(s === undefined ? { id: msg.id, freed: 0, digests: [] } : run(msg.id, s, msg.ops));
});
