/**
 * File bytes for a streaming export, read ahead of the entry being written into a few reused 1 MiB
 * slabs. Small files that sit next to each other in one layer's `.contents` (the walk's order is
 * nearly the layer's order: page-aligned files in tar order) are read with one positional read per
 * run, up to a slab: the Debian bench image's ~5 100 files become ~200 reads. Slabs come back when
 * the writer has consumed every body they hold (`release`), so a 200 MB export allocates 8 MiB,
 * not a buffer per file (those drove a dozen full GCs per export).
 */
import { containerInternals, type ContainerFS } from '../vfs/container-fs.js';
import { ContentFile, type ContentReader } from '../vfs/content.js';
import { shortRead } from './walk.js';

/** Bytes of a slab: the largest small file, the longest run, a large file's read. */
export const SLAB = 1 << 20;
/** Slabs for runs of small files: the bytes read ahead and not yet consumed by the writer. */
const RUN_SLABS = 8;
/** Slabs for a large file's reads: one consumed while the next is read. Apart from the runs' slabs, which may be held by files queued after it. */
const CHUNK_SLABS = 2;
/** Bytes between two files (page padding) that a run reads through rather than splitting. */
const MAX_GAP = 64 << 10;

/** A reused buffer and how many bodies in it the writer has not consumed yet. */
interface Slab {
  buf: Buffer;
  pending: number;
}

/** Consecutive files of one layer read with one read: stream positions [start, end) of its reader. */
interface Run {
  reader: ContentReader;
  start: number;
  end: number;
  files: number;
  /** A lazy layer's file, read through ContainerFS on its own (its reader fetches what a read covers). */
  ino?: number;
  read?: Promise<Slab>;
  /** The slab, once the read is done (bodies taken without a promise). */
  slab?: Slab;
}

/** A small file's place: its run and where its bytes start in it. */
export interface Placed {
  run: Run;
  at: number;
  size: number;
}

/** The bytes of a file, in a slab, and what to call once the writer has copied them. */
export interface Body {
  bytes: Buffer;
  release: () => void;
}

/** See the module comment. `place` files in write order, `body` them in the same order. */
export class ReadAhead {
  private readonly runSlabs = new SlabPool(RUN_SLABS);
  private readonly chunkSlabs = new SlabPool(CHUNK_SLABS);
  private open: Run | undefined;
  private readonly readers: readonly ContentReader[];
  private readonly layer: Int32Array;
  private readonly offset: (ino: number) => number;

  constructor(private readonly fs: ContainerFS) {
    const { table, files } = containerInternals(fs);
    this.readers = files;
    this.layer = table.layer;
    this.offset = (ino) => table.offset(ino);
  }

  /** Every run slab is lent out (reading, or holding bodies not yet consumed): write before placing more. */
  get full(): boolean {
    return this.runSlabs.exhausted;
  }

  /** Assigns a small file (1..SLAB bytes) to a run: the current one when it follows it closely, else a new one. */
  place(ino: number, size: number): Placed {
    const reader = this.readers[this.layer[ino]!]!;
    const pos = this.offset(ino);
    const run = this.open;
    const local = reader instanceof ContentFile; // a lazy reader fetches what a read covers: files only
    if (run && local && run.reader === reader && pos >= run.end && pos - run.end <= MAX_GAP && pos + size - run.start <= SLAB) {
      run.end = pos + size;
      run.files++;
      return { run, at: pos - run.start, size };
    }
    this.start();
    const fresh: Run = local ? { reader, start: pos, end: pos + size, files: 1 } : { reader, start: 0, end: size, files: 1, ino };
    if (local) this.open = fresh;
    else this.read(fresh);
    return { run: fresh, at: 0, size };
  }

  /** Starts the open run's read (no more files join it). */
  start(): void {
    const run = this.open;
    this.open = undefined;
    if (run) this.read(run);
  }

  private read(run: Run): void {
    run.read = this.readRun(run);
    run.read.then((slab) => (run.slab = slab)).catch(() => undefined); // awaited by body(); an export stopped before then is no unhandled rejection
  }

  /** A placed file's bytes, once its run is read. */
  async body(p: Placed): Promise<Body> {
    if (p.run === this.open) this.start();
    return this.bodyIn(p, await p.run.read!);
  }

  /** A placed file's bytes when its run's read is done already, else undefined (then `body` it). */
  bodyNow(p: Placed): Body | undefined {
    return p.run.slab ? this.bodyIn(p, p.run.slab) : undefined;
  }

  private bodyIn(p: Placed, slab: Slab): Body {
    return { bytes: slab.buf.subarray(p.at, p.at + p.size), release: () => this.runSlabs.put(slab) };
  }

  /** `n` (≤ SLAB) bytes of a large file from `position`, in a slab of their own. */
  async chunk(ino: number, position: number, n: number, name: string): Promise<Body> {
    const slab = await this.chunkSlabs.get(1);
    try {
      const got = await this.fs.readInto(ino, slab.buf, 0, n, position);
      if (got !== n) throw shortRead(`${name}: ${position + got} of ${position + n} bytes`);
    } catch (err) {
      this.chunkSlabs.put(slab);
      throw err;
    }
    return { bytes: slab.buf.subarray(0, n), release: () => this.chunkSlabs.put(slab) };
  }

  /** Fails every wait for a slab with `err` (the export failed): nothing waits for one that never comes. */
  fail(err: Error): void {
    this.runSlabs.fail(err);
    this.chunkSlabs.fail(err);
  }

  private async readRun(run: Run): Promise<Slab> {
    const slab = await this.runSlabs.get(run.files);
    try {
      const n = run.end - run.start;
      if (run.ino === undefined) await run.reader.readInto(slab.buf, 0, n, run.start);
      else if ((await this.fs.readInto(run.ino, slab.buf, 0, n, 0)) !== n) throw shortRead(`inode ${run.ino}: fewer than ${n} bytes`);
    } catch (err) {
      this.runSlabs.put(slab, run.files);
      throw err;
    }
    return slab;
  }
}

/** At most `limit` slabs, made on demand and reused; a slab returns once its last user put it back. */
class SlabPool {
  private readonly free: Slab[] = [];
  private made = 0;
  private waiting: { resolve: (s: Slab) => void; reject: (err: Error) => void; users: number }[] = [];
  private failure: Error | undefined;

  constructor(private readonly limit: number) {}

  get exhausted(): boolean {
    return this.free.length === 0 && this.made >= this.limit;
  }

  /** A slab for `users` bodies (each puts it back once), waiting in turn when all are lent out. */
  get(users: number): Promise<Slab> {
    if (this.failure) return Promise.reject(this.failure);
    const slab = this.free.pop() ?? (this.made < this.limit ? (this.made++, { buf: Buffer.allocUnsafeSlow(SLAB), pending: 0 }) : undefined);
    if (slab) return Promise.resolve(((slab.pending = users), slab));
    return new Promise<Slab>((resolve, reject) => this.waiting.push({ resolve, reject, users }));
  }

  put(slab: Slab, n = 1): void {
    slab.pending -= n;
    if (slab.pending > 0) return;
    const w = this.waiting.shift();
    if (!w) return void this.free.push(slab);
    slab.pending = w.users;
    w.resolve(slab);
  }

  fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
