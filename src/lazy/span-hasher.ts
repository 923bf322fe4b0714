/**
 * Span digests (sha256 of each span's compressed bytes) for the inflate worker's checkpointing streams
 * (ring-checkpoints.ts), computed by a thread of its own straight from the stream's input ring: no byte
 * is copied, and the inflate thread, the pull's critical path, only names ranges. The ring's bytes
 * must stay until that thread has read them: {@link SpanHashStream.safeTo} says how far the input ring
 * may be reused. The thread's code is a few lines of its own (run with `eval`), so it starts the same
 * from dist/ and from the sources under tsx (a worker module there is bundled into a data: URL, from
 * which no sibling module can be found).
 */
import { Worker } from 'node:worker_threads';

/** Ops of a message to the hasher; each is followed by its numbers. */
const Op = { Begin: 1, Byte: 2, Range: 3, End: 4 } as const;

/** The hasher thread: per stream a ring (shared memory) and one open span digest at a time. */
const HASHER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', (m) => {
  if (m.t === 'open') return void streams.set(m.id, { ring: new Uint8Array(m.sab, m.offset, m.size), hash: undefined });
  if (m.t === 'close') return void streams.delete(m.id);
  const s = streams.get(m.id);
  if (s === undefined) return void parentPort.postMessage({ id: m.id, digests: [] }); // closed: answered all the same
  const digests = [];
  const ops = m.ops;
  for (let i = 0; i < ops.length; ) {
    const op = ops[i++];
    if (op === ${Op.Begin}) s.hash = createHash('sha256');
    else if (op === ${Op.Byte}) s.hash.update(Uint8Array.of(ops[i++]));
    else if (op === ${Op.Range}) {
      const end = ops[i + 1];
      for (let x = ops[i]; x < end; ) {
        const at = x % s.ring.length;
        const n = Math.min(end - x, s.ring.length - at);
        s.hash.update(s.ring.subarray(at, at + n));
        x += n;
      }
      i += 2;
    } else if (op === ${Op.End}) digests.push(s.hash.digest('hex'));
  }
  parentPort.postMessage({ id: m.id, digests });
});
`;

interface Waiter {
  resolve: (hex: string) => void;
  reject: (err: Error) => void;
}

let worker: Worker | undefined;
/** Messages sent and not answered: the hasher is ref'd while there are any (a digest is awaited). */
let inflight = 0;
const open = new Map<number, SpanHashStream>();
let nextId = 1;

function hasher(): Worker {
  if (worker !== undefined) return worker;
  // no execArgv: the code needs no loader, and an inherited --input-type=module would refuse its require()
  const w = new Worker(HASHER, { eval: true, execArgv: [] });
  w.on('message', (msg: { id: number; digests: string[] }) => {
    if (--inflight === 0) w.unref();
    open.get(msg.id)?.answer(msg.digests);
  });
  // its streams fail (their indexes are not made, the inflates go on); the next stream starts a new one
  const lost = (err: Error): void => {
    if (worker !== w) return;
    worker = undefined;
    inflight = 0;
    for (const s of open.values()) s.fail(err);
    open.clear();
  };
  w.on('error', lost);
  w.on('exit', (code) => lost(new Error(`span hasher exited (${code})`)));
  w.unref(); // after the listeners (a 'message' listener refs a Worker): idle, it keeps nothing alive
  worker = w;
  return w;
}

/**
 * One stream's span digests, over ranges of its input ring (`ring`: a view on shared memory, blob
 * offset `x` at `x % ring.length`). Ops go to the hasher with {@link flush}; its answers come in order.
 */
export class SpanHashStream {
  readonly id = nextId++;
  private ops: number[] = [];
  /** Per message sent and not answered: the blob offset of its first range (Infinity: none). */
  private readonly inFlight: number[] = [];
  private unsentFrom = Infinity;
  private readonly waiters: Waiter[] = [];
  private error: Error | undefined;
  private closed = false;

  /** `onAnswer`: the hasher answered (ring bytes may be free, digests in). */
  constructor(ring: Uint8Array, private readonly onAnswer: () => void) {
    open.set(this.id, this);
    hasher().postMessage({ t: 'open', id: this.id, sab: ring.buffer, offset: ring.byteOffset, size: ring.length });
  }

  /** A new span begins. */
  begin(): void {
    this.ops.push(Op.Begin);
  }

  /** One byte that is not in the ring goes into the span. */
  byte(value: number): void {
    this.ops.push(Op.Byte, value);
  }

  /** Blob bytes `[start, end)`, still in the ring, go into the span. */
  range(start: number, end: number): void {
    if (end <= start) return;
    this.unsentFrom = Math.min(this.unsentFrom, start);
    this.ops.push(Op.Range, start, end);
  }

  /** The span is complete: its sha256 in hex, once the hasher got to it. */
  end(): Promise<string> {
    this.ops.push(Op.End);
    const p = new Promise<string>((resolve, reject) => (this.error ? reject(this.error) : this.waiters.push({ resolve, reject })));
    p.catch(() => undefined); // handled where it is awaited
    return p;
  }

  /** Blob offset below which the ring's bytes are no longer read (Infinity: none are pending). */
  get safeTo(): number {
    if (this.error) return Infinity;
    // every message in flight counts, not the oldest alone: one without ranges (a span's end) is Infinity
    let low = this.unsentFrom;
    for (const from of this.inFlight) low = Math.min(low, from);
    return low;
  }

  /** Sends the queued ops (if any). */
  flush(): void {
    if (this.ops.length === 0 || this.error || this.closed) return;
    const w = hasher();
    if (inflight++ === 0) w.ref();
    w.postMessage({ id: this.id, ops: this.ops });
    this.inFlight.push(this.unsentFrom);
    this.ops = [];
    this.unsentFrom = Infinity;
  }

  /** @internal The hasher's answer to the oldest message. */
  answer(digests: string[]): void {
    this.inFlight.shift();
    for (const hex of digests) this.waiters.shift()?.resolve(hex);
    if (!this.closed) this.onAnswer();
  }

  /** @internal The hasher is gone: digests reject, no ring byte is held any more. */
  fail(err: Error): void {
    this.error ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.inFlight.length = 0;
    if (!this.closed) this.onAnswer();
  }

  /** Stops the stream: the hasher forgets it, pending digests never settle. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (open.delete(this.id)) worker?.postMessage({ t: 'close', id: this.id });
  }
}
