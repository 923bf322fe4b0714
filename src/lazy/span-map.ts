/**
 * The `.spans` presence map of a lazily read layer (docs/FORMAT.md "`.spans`"): which spans of the
 * layer's `.zran` are inflated into its `.contents`. Bits are persisted only after the bytes are synced.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { crc32 } from '../layer/crc32.js';
import { digestHex } from '../digest/index.js';
import { writeFileDurable } from '../util/fs.js';

const MAGIC = 'VMIMGSPN';
const HEADER = 64;

/** Which spans are present; `save` writes the map (temp name + rename). */
export class SpanMap {
  private constructor(
    readonly path: string,
    readonly digest: string,
    readonly spanCount: number,
    private readonly bits: Uint8Array,
  ) {}

  /** Reads the map at `path`, or starts an empty one when there is none (or it is for another blob). */
  static async load(path: string, digest: string, spanCount: number): Promise<SpanMap> {
    const buf = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    const empty = new SpanMap(path, digest, spanCount, new Uint8Array(Math.ceil(spanCount / 8)));
    if (buf === undefined) return empty;
    try {
      return new SpanMap(path, digest, spanCount, decodeSpans(buf, digest, spanCount));
    } catch {
      return empty; // a damaged map only costs refetches
    }
  }

  /** Adds the bits other processes saved since (a damaged or foreign file adds nothing). */
  async refresh(): Promise<void> {
    const buf = await readFile(this.path).catch(() => undefined);
    if (buf === undefined) return;
    try {
      const bits = decodeSpans(buf, this.digest, this.spanCount);
      for (let k = 0; k < bits.length; k++) this.bits[k]! |= bits[k]!;
    } catch {
      // only costs refetches
    }
  }

  has(i: number): boolean {
    return (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    this.bits[i >> 3]! |= 1 << (i & 7);
  }

  /** No span present. */
  get none(): boolean {
    return this.bits.every((b) => b === 0);
  }

  /** Every span present. */
  get complete(): boolean {
    for (let i = 0; i < this.spanCount; i++) if (!this.has(i)) return false;
    return true;
  }

  /** Every span present from now on (a layer fetched whole). */
  setAll(): void {
    for (let i = 0; i < this.spanCount; i++) this.set(i);
  }

  /**
   * Writes the bits in place (image directories hard-link the layer's `.spans`, so a rename would
   * split them), with the ones other processes saved meanwhile; a missing or foreign file is written
   * whole under a temp name and renamed.
   */
  async save(): Promise<void> {
    const fh = await open(this.path, 'r+').catch(() => undefined);
    if (fh !== undefined) {
      try {
        const head = Buffer.alloc(HEADER);
        await fh.read(head, 0, HEADER, 0);
        if ((await fh.stat()).size === HEADER + this.bits.length && head.equals(encodeSpans(this.digest, this.spanCount, new Uint8Array(0)))) {
          const theirs = Buffer.alloc(this.bits.length);
          await fh.read(theirs, 0, theirs.length, HEADER);
          for (let k = 0; k < theirs.length; k++) this.bits[k]! |= theirs[k]!;
          await fh.write(this.bits, 0, this.bits.length, HEADER);
          await fh.datasync();
          return;
        }
      } finally {
        await fh.close();
      }
    }
    await SpanMap.write(this.path, encodeSpans(this.digest, this.spanCount, this.bits));
  }

  /** Writes an empty map for `digest` at `path` (temp name, fsync, rename). */
  static async create(path: string, digest: string, spanCount: number): Promise<void> {
    await SpanMap.write(path, encodeSpans(digest, spanCount, new Uint8Array(Math.ceil(spanCount / 8))));
  }

  private static async write(path: string, bytes: Buffer): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await writeFileDurable(tmp, bytes);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}

function encodeSpans(digest: string, spanCount: number, bits: Uint8Array): Buffer {
  const buf = Buffer.alloc(HEADER + bits.length);
  buf.write(MAGIC, 0, 'latin1');
  buf.writeUInt16LE(1, 8);
  buf.writeUInt16LE(HEADER, 10);
  buf.writeUInt32LE(spanCount, 12);
  Buffer.from(digestHex(digest), 'hex').copy(buf, 16);
  buf.writeUInt32LE(crc32(buf.subarray(0, 60)), 60);
  buf.set(bits, HEADER);
  return buf;
}

function decodeSpans(buf: Buffer, digest: string, spanCount: number): Uint8Array {
  const ok =
    buf.length === HEADER + Math.ceil(spanCount / 8) &&
    buf.toString('latin1', 0, 8) === MAGIC &&
    buf.readUInt16LE(8) === 1 &&
    buf.readUInt16LE(10) === HEADER &&
    buf.readUInt32LE(12) === spanCount &&
    buf.toString('hex', 16, 48) === digestHex(digest) &&
    buf.readUInt32LE(60) === crc32(buf.subarray(0, 60));
  if (!ok) throw new VmimgError(ErrorCode.INVALID_INDEX, 'invalid .spans file');
  return Uint8Array.from(buf.subarray(HEADER));
}

/** fdatasync of a file by path (the span bytes before their bits). */
export async function syncData(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
