/**
 * The flattener's entry table, kept as `.idx` records (index-records.ts) in 4 MiB chunks instead of
 * one object per entry: a million entries cost their record bytes (~110 each) plus ~20 bytes of
 * typed arrays, where IndexEntry objects and a Map keyed by path cost ~400 (docs/DECISIONS.md).
 * Keys are the builder's latin1 paths; whiteouts and opaque markers live in their own key spaces
 * (`\0w` + path, `\0o` + path), told apart by the record's type. A key set again moves to the end (the
 * later tar entry wins, at the later position); `replace` keeps the position (a hardlink inheriting an
 * inode). Looked-up entries are decoded on demand: only duplicates and hardlinks ask.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from './crc32.js';
import { EntryType, type IndexEntry } from './entry.js';
import { decodeRecord, encodeRecord, pathStart, recordSize, type IndexVersion } from './index-records.js';

const CHUNK = 4 << 20;
/** Records written per writev call (Linux's IOV_MAX is 1024). */
const IOV_BATCH = 512;

function spaceOfType(type: number): number {
  return type === EntryType.Whiteout ? 0x77 : type === EntryType.Opaque ? 0x6f : 0; // 'w', 'o'
}

/** FNV-1a over the key space and the path's bytes (latin1 chars are bytes). */
function hashKey(key: string): number {
  const spaced = key.charCodeAt(0) === 0;
  let h = Math.imul(0x811c9dc5 ^ (spaced ? key.charCodeAt(1) : 0), 0x01000193);
  for (let i = spaced ? 2 : 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class RecordTable {
  private readonly chunks: Buffer[] = [];
  private used = CHUNK; // of the last chunk: full, so the first record opens one
  /** Per record: chunk * CHUNK + offset (-1: in `big`), byte length, key hash, replaced by a later record. */
  private loc = new Float64Array(1024);
  private len = new Uint32Array(1024);
  private hash = new Uint32Array(1024);
  private dead = new Uint8Array(1024);
  private n = 0;
  private alive = 0;
  /** Records larger than a chunk, and records rewritten in place, by record number. */
  private readonly big = new Map<number, Buffer>();
  private readonly overrides = new Map<number, IndexEntry>();
  /** Open addressing: record number + 1 per slot, 0 empty. */
  private slots = new Int32Array(2048);
  /** Directory keys replaced by a non-directory → records (ids below the value) under them are gone. */
  private readonly cuts = new Map<string, number>();

  constructor(private readonly version: IndexVersion) {}

  has(key: string): boolean {
    return this.find(key) >= 0;
  }

  /** The entry at `key`; with `evenCut`, also one a replaced directory above it took away. */
  get(key: string, evenCut = false): IndexEntry | undefined {
    const id = evenCut ? this.slots[this.slotOf(key, hashKey(key))]! - 1 : this.find(key);
    return id < 0 ? undefined : this.entry(id);
  }

  /** Whether `key` was recorded and then taken away by a replaced directory above it. */
  wasCut(key: string): boolean {
    return this.cuts.size > 0 && this.get(key, true) !== undefined && this.find(key) < 0;
  }

  /** Adds `entry` under `key` at the end; an earlier record of the key is dropped. */
  set(key: string, entry: IndexEntry): void {
    const h = hashKey(key);
    const slot = this.slotOf(key, h);
    const old = this.slots[slot]! - 1;
    if (old >= 0) {
      this.dead[old] = 1;
      this.alive--;
      this.overrides.delete(old);
      this.big.delete(old);
    }
    const id = this.append(entry, h);
    this.slots[slot] = id + 1;
    this.alive++;
    if (old < 0 && this.alive * 2 > this.slots.length) this.rehash();
  }

  /** Replaces the entry of an existing `key` at its position (rare: kept as an object). */
  replace(key: string, entry: IndexEntry, evenCut = false): void {
    const id = evenCut ? this.slots[this.slotOf(key, hashKey(key))]! - 1 : this.find(key);
    if (id < 0) throw new Error(`record table: no entry ${JSON.stringify(key)} to replace`);
    recordSize(entry, this.version); // the limits, now rather than when writing
    this.overrides.set(id, entry);
  }

  /**
   * The directory at `key` is being replaced by a non-directory: every entry recorded so far below it is
   * gone (as extracting the tar in order removes the directory's tree). Checked per lookup and when
   * writing, walking a key's parents: no scan of the table per replacement.
   */
  cut(key: string): void {
    if (key !== '') this.cuts.set(key, this.n);
  }

  /** Every live entry in order, decoded (tests and small layers; the flattener writes records as they are). */
  *values(): IterableIterator<IndexEntry> {
    for (let id = 0; id < this.n; id++) if (this.live(id)) yield this.entry(id);
  }

  private live(id: number): boolean {
    if (this.dead[id]) return false;
    if (this.cuts.size === 0) return true;
    const [buf, at] = this.record(id);
    if (buf[at] === EntryType.Whiteout || buf[at] === EntryType.Opaque) return true; // markers are never applied in their layer
    const p = pathStart(buf, at, this.version);
    return !this.isCut(buf.toString('latin1', p, p + buf.readUInt32LE(at + 36)), id);
  }

  /** Whether record `id` at real key `key` sits below a directory replaced after it was recorded. */
  private isCut(key: string, id: number): boolean {
    for (let slash = key.indexOf('/'); slash >= 0; slash = key.indexOf('/', slash + 1)) {
      const cutAt = this.cuts.get(key.slice(0, slash));
      if (cutAt !== undefined && id < cutAt) return true;
    }
    return false;
  }

  /** Writes the live records in order from `at` (no `fh`: only measures); returns their count, byte length and CRC-32. */
  async write(fh: FileHandle | undefined, at: number): Promise<{ count: number; bytes: number; crc: number }> {
    let crc = 0;
    let bytes = 0;
    let batch: Buffer[] = [];
    const counter = { count: 0 };
    for (const piece of this.pieces(counter)) {
      crc = crc32(piece, crc);
      bytes += piece.length;
      if (fh === undefined) continue;
      batch.push(piece);
      if (batch.length === IOV_BATCH) {
        await writeAll(fh, batch, at);
        at += batch.reduce((s, b) => s + b.length, 0);
        batch = [];
      }
    }
    if (fh !== undefined && batch.length > 0) await writeAll(fh, batch, at);
    return { count: counter.count, bytes, crc };
  }

  /** The live records as buffers, runs of adjacent records in one chunk joined; counts them. */
  private *pieces(counter: { count: number }): IterableIterator<Buffer> {
    let runStart = -1;
    let runEnd = -1;
    for (let id = 0; id < this.n; id++) {
      if (!this.live(id)) continue;
      counter.count++;
      const override = this.overrides.get(id);
      const loc = this.loc[id]!;
      if (override === undefined && loc >= 0 && loc === runEnd && Math.floor(loc / CHUNK) === Math.floor(runStart / CHUNK)) {
        runEnd += this.len[id]!;
        continue;
      }
      if (runStart >= 0) yield this.slice(runStart, runEnd);
      runStart = runEnd = -1;
      if (override !== undefined) yield this.encode(override);
      else if (loc < 0) yield this.big.get(id)!;
      else [runStart, runEnd] = [loc, loc + this.len[id]!];
    }
    if (runStart >= 0) yield this.slice(runStart, runEnd);
  }

  private slice(start: number, end: number): Buffer {
    const c = Math.floor(start / CHUNK);
    return this.chunks[c]!.subarray(start - c * CHUNK, end - c * CHUNK);
  }

  private encode(entry: IndexEntry): Buffer {
    const buf = Buffer.allocUnsafe(recordSize(entry, this.version));
    encodeRecord(buf, 0, entry, this.version);
    return buf;
  }

  private entry(id: number): IndexEntry {
    const o = this.overrides.get(id);
    if (o !== undefined) return o;
    const [buf, at] = this.record(id);
    return decodeRecord(buf, at, this.version);
  }

  private record(id: number): [Buffer, number] {
    const loc = this.loc[id]!;
    if (loc < 0) return [this.big.get(id)!, 0];
    const c = Math.floor(loc / CHUNK);
    return [this.chunks[c]!, loc - c * CHUNK];
  }

  private append(entry: IndexEntry, h: number): number {
    const size = recordSize(entry, this.version);
    if (this.n === this.loc.length) this.grow();
    const id = this.n++;
    this.len[id] = size;
    this.hash[id] = h;
    this.dead[id] = 0;
    if (size > CHUNK) {
      this.loc[id] = -1;
      this.big.set(id, this.encode(entry));
      return id;
    }
    if (this.used + size > CHUNK) {
      this.chunks.push(Buffer.allocUnsafe(CHUNK)); // every byte of a record is written by encodeRecord
      this.used = 0;
    }
    encodeRecord(this.chunks[this.chunks.length - 1]!, this.used, entry, this.version);
    this.loc[id] = (this.chunks.length - 1) * CHUNK + this.used;
    this.used += size;
    return id;
  }

  private grow(): void {
    const cap = this.loc.length * 2;
    const grown = <T extends Float64Array | Uint32Array | Uint8Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(cap);
      b.set(a);
      return b;
    };
    this.loc = grown(this.loc, Float64Array);
    this.len = grown(this.len, Uint32Array);
    this.hash = grown(this.hash, Uint32Array);
    this.dead = grown(this.dead, Uint8Array);
  }

  /** The record number of `key`, or -1 (also when a replaced directory above it took it away). */
  private find(key: string): number {
    const id = this.slots[this.slotOf(key, hashKey(key))]! - 1;
    return id >= 0 && this.cuts.size > 0 && key.charCodeAt(0) !== 0 && this.isCut(key, id) ? -1 : id;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private slotOf(key: string, h: number): number {
    const mask = this.slots.length - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const id = this.slots[s]! - 1;
      if (id < 0 || (this.hash[id] === h && this.matches(id, key))) return s;
    }
  }

  /** Whether record `id` has `key`: same key space and the same path bytes. */
  private matches(id: number, key: string): boolean {
    const [buf, at] = this.record(id);
    const spaced = key.charCodeAt(0) === 0;
    if (spaceOfType(buf[at]!) !== (spaced ? key.charCodeAt(1) : 0)) return false;
    const from = spaced ? 2 : 0;
    const pathLen = buf.readUInt32LE(at + 36);
    if (pathLen !== key.length - from) return false;
    const p = pathStart(buf, at, this.version);
    for (let i = 0; i < pathLen; i++) if (buf[p + i] !== key.charCodeAt(from + i)) return false;
    return true;
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let id = 0; id < this.n; id++) {
      if (this.dead[id]) continue;
      let s = this.hash[id]! & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = id + 1;
    }
    this.slots = slots;
  }
}

/** Writes every buffer at `position` on, resuming after short writes. */
async function writeAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let { bytesWritten } = await fh.writev(rest, position);
    position += bytesWritten;
    let i = 0;
    while (i < rest.length && bytesWritten >= rest[i]!.length) bytesWritten -= rest[i++]!.length;
    rest = rest.slice(i);
    if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}
