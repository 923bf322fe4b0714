/**
 * The data area of the ext4 writer: blocks allocated in order, file content streamed into them with
 * all-zero 4 KiB blocks left as holes, writes gathered into a few large sequential writev calls, and
 * the next files' first reads started early (each read waits on the thread pool).
 */
import type { FileHandle } from 'node:fs/promises';
import { S_IFMT, S_IFREG } from '../../layer/entry.js';
import type { ContainerFS } from '../../vfs/index.js';
import { shortRead } from '../walk.js';
import { BLOCK } from './format.js';
import { buildExtentTree, EXT4_EXTENTS_FL, MAX_EXTENT_BLOCKS, type Extent } from './inode.js';
import type { Plan, PlanNode } from './plan.js';

const CHUNK = 1 << 20;
/** Inodes looked ahead for file reads to start early. */
const READ_AHEAD = 32;
/** Data-area writes are gathered up to this size, or this many buffers (under IOV_MAX for writev). */
const FLUSH_BYTES = 4 << 20;
const MAX_BUFFERS = 512;
const ZERO = Buffer.alloc(BLOCK);
const ZERO_CHUNK = Buffer.alloc(CHUNK);
/** An inode's mapping: its i_block, blocks used and flags. */
export interface Mapping {
  iblock: Buffer;
  blocks: number;
  flags: number;
  size: number;
}

/**
 * Allocates data-area blocks in order and writes file content into them, leaving zero blocks as holes.
 * Allocation is sequential, so every write lands right after the previous one: writes are gathered
 * into one buffer and flushed a few MiB at a time.
 */
export class DataWriter {
  next: number;
  dataBlocks = 0;
  holeBlocks = 0;
  readonly #pending: Buffer[] = [];
  #pendingStart: number;
  #pendingBytes = 0;

  constructor(private readonly fh: FileHandle, first: number) {
    this.next = first;
    this.#pendingStart = first;
  }

  allocate(count: number): number {
    const at = this.next;
    this.next += count;
    return at;
  }

  /** Queues `data` for the `count` blocks at `at` (just allocated: contiguous with what is queued). */
  async put(at: number, data: Buffer, count: number): Promise<void> {
    this.queueBlocks(at, data, count);
    if (this.#pendingBytes >= FLUSH_BYTES || this.#pending.length >= MAX_BUFFERS) await this.flush();
  }

  /** Like put, without flushing (extent-tree blocks, queued while an inode is encoded). */
  queueBlocks(at: number, data: Buffer, count: number): void {
    if (at !== this.#pendingStart + this.#pendingBytes / BLOCK) throw new Error(`ext4 data writer: block ${at} out of order`);
    this.#pending.push(data);
    const pad = count * BLOCK - data.length;
    if (pad > 0) this.#pending.push(ZERO.subarray(0, pad));
    this.#pendingBytes += count * BLOCK;
  }

  async flush(): Promise<void> {
    if (this.#pendingBytes === 0) return;
    // writev: no copy into one buffer; a short write (rare on a regular file) finishes with a plain write
    const { bytesWritten } = await this.fh.writev(this.#pending, this.#pendingStart * BLOCK);
    if (bytesWritten < this.#pendingBytes) {
      const rest = Buffer.concat(this.#pending, this.#pendingBytes).subarray(bytesWritten);
      await writeAtByte(this.fh, rest, this.#pendingStart * BLOCK + bytesWritten);
    }
    this.#pending.length = 0;
    this.#pendingStart += this.#pendingBytes / BLOCK;
    this.#pendingBytes = 0;
  }

  /** Streams a regular file's content into the data area; returns its inode mapping. */
  async file(fs: ContainerFS, node: PlanNode, first?: Promise<Buffer>): Promise<Mapping> {
    const extents: Extent[] = [];
    const size = node.size;
    // image files are checked against their index sha256 as they pass (ERR_DIGEST_MISMATCH)
    const verifier = node.src === undefined ? undefined : fs.verifier(node.src, `/${node.path}`);
    for (let pos = 0; pos < size; ) {
      const buf =
        node.src === undefined ? node.data!.subarray(pos, pos + CHUNK) : pos === 0 && first ? await first : await fs.read(node.src, pos, Math.min(CHUNK, size - pos));
      if (buf.length === 0) throw shortRead(`/${node.path}: ${pos} of ${size} bytes`);
      verifier?.update(buf);
      await this.#chunk(buf, pos / BLOCK, extents);
      pos += buf.length;
    }
    verifier?.check();
    return mapped(extents, size, this);
  }

  /** Queues the non-zero blocks of `buf` (starting at logical block `logical`), extending `extents`. */
  async #chunk(buf: Buffer, logical: number, extents: Extent[]): Promise<void> {
    if (buf.length === CHUNK && buf.equals(ZERO_CHUNK)) {
      this.holeBlocks += CHUNK / BLOCK; // one compare for a whole chunk of hole
      return;
    }
    let runStart = -1;
    const nblocks = Math.ceil(buf.length / BLOCK);
    for (let i = 0; i <= nblocks; i++) {
      const zero = i === nblocks || isZero(buf, i * BLOCK);
      if (!zero && runStart < 0) runStart = i;
      if (zero && runStart >= 0) {
        const count = i - runStart;
        const at = this.allocate(count);
        await this.put(at, buf.subarray(runStart * BLOCK, Math.min(buf.length, i * BLOCK)), count);
        addRun(extents, logical + runStart, at, count);
        this.dataBlocks += count;
        runStart = -1;
      }
      if (zero && i < nblocks) this.holeBlocks++;
    }
  }
}

/** Reads the first chunk of the next few image files while earlier ones are written (reads wait on the thread pool). */
export class ReadAhead {
  readonly #started = new Map<number, Promise<Buffer>>();
  #next = 1;

  constructor(private readonly fs: ContainerFS, private readonly plan: Plan) {}

  /** Starts reads for the files among the next READ_AHEAD inodes after `ino`. */
  advance(ino: number): void {
    this.#next = Math.max(this.#next, ino);
    for (; this.#next <= Math.min(this.plan.lastIno, ino + READ_AHEAD); this.#next++) {
      const n = this.plan.nodes[this.#next];
      if (!n || n.src === undefined || (n.mode & S_IFMT) !== S_IFREG || n.size === 0) continue;
      const read = this.fs.read(n.src, 0, Math.min(CHUNK, n.size));
      read.catch(() => undefined); // a failure surfaces when the file's turn comes
      this.#started.set(this.#next, read);
    }
  }

  take(ino: number): Promise<Buffer> | undefined {
    const p = this.#started.get(ino);
    this.#started.delete(ino);
    return p;
  }
}

function isZero(buf: Buffer, at: number): boolean {
  const end = Math.min(buf.length, at + BLOCK);
  return buf.subarray(at, end).equals(end - at === BLOCK ? ZERO : ZERO.subarray(0, end - at));
}

function addRun(extents: Extent[], logical: number, physical: number, count: number): void {
  const last = extents[extents.length - 1];
  if (last && last.logical + last.length === logical && last.physical + last.length === physical) {
    const room = MAX_EXTENT_BLOCKS - last.length;
    const take = Math.min(room, count);
    last.length += take;
    logical += take;
    physical += take;
    count -= take;
  }
  for (; count > 0; ) {
    const take = Math.min(MAX_EXTENT_BLOCKS, count);
    extents.push({ logical, physical, length: take });
    logical += take;
    physical += take;
    count -= take;
  }
}

/** An extent-mapped inode's i_block and block count; tree blocks (if any) come from the data writer. */
export function mapped(extents: Extent[], size: number, data: DataWriter): Mapping {
  const tree = buildExtentTree(extents, (n) => data.allocate(n));
  for (const b of tree.blocks) data.queueBlocks(b.at, b.data, 1);
  const blocks = extents.reduce((n, e) => n + e.length, 0) + tree.blocks.length;
  return { iblock: tree.iblock, blocks, flags: EXT4_EXTENTS_FL, size };
}

export async function writeAt(fh: FileHandle, buf: Buffer, block: number): Promise<void> {
  await writeAtByte(fh, buf, block * BLOCK);
}

async function writeAtByte(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

