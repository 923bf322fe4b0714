/**
 * The data area of the ext4 writer: blocks allocated in order, file content streamed into them with
 * all-zero 4 KiB blocks left as holes, writes gathered into a few large sequential writev calls;
 * image files read in spans of many files, in the order their bytes lie in the layers (spans.ts).
 */
import type { FileHandle } from 'node:fs/promises';
import { S_IFMT, S_IFREG } from '../../layer/entry.js';
import type { ContainerFS, ContentVerifier } from '../../vfs/index.js';
import { BLOCK } from './format.js';
import { buildExtentTree, EXT4_EXTENTS_FL, MAX_EXTENT_BLOCKS, type Extent } from './inode.js';
import type { Plan, PlanNode } from './plan.js';
import { planSpans, readSpans, SpanBuffers } from './spans.js';

/** Hole detection looks at this much at once (one compare when it is all zeros). */
const CHUNK = 1 << 20;
/** Data-area writes are gathered up to this size, or this many buffers (under IOV_MAX for writev). */
const FLUSH_BYTES = 2 << 20;
/** Data-area writes running at once (each a thread-pool job). */
const WRITES_IN_FLIGHT = 4;
const MAX_BUFFERS = 512;
const ZERO = Buffer.alloc(BLOCK);
const ZERO_CHUNK = Buffer.alloc(CHUNK);
const EMPTY = Buffer.alloc(0);
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
  readonly #writing: Promise<void>[] = [];
  /** Flushes started, and the leading ones finished (a span buffer is reused once the flush holding its bytes is done). */
  #flushes = 0;
  #written = 0;
  readonly #done = new Set<number>();
  /** Buffers queued for writing so far: a span that added none holds no view of its buffer. */
  #queued = 0;

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
    this.#queued++;
    const pad = count * BLOCK - data.length;
    if (pad > 0) this.#pending.push(ZERO.subarray(0, pad));
    this.#pendingBytes += count * BLOCK;
  }

  /**
   * Starts writing what is queued (one positional writev) and goes on while up to WRITES_IN_FLIGHT
   * writes run: on a busy host each thread-pool job waits to be scheduled, so overlapping them is
   * what keeps the export moving.
   */
  async flush(): Promise<void> {
    if (this.#pendingBytes === 0) return;
    const buffers = this.#pending.splice(0);
    const [position, bytes, index] = [this.#pendingStart * BLOCK, this.#pendingBytes, ++this.#flushes];
    this.#pendingStart += bytes / BLOCK;
    this.#pendingBytes = 0;
    const write = writeBuffers(this.fh, buffers, position, bytes).then(() => this.#finished(index));
    write.catch(() => undefined); // awaited below or by drain
    this.#writing.push(write);
    if (this.#writing.length >= WRITES_IN_FLIGHT) await this.#writing.shift();
  }

  /** Writes finish in any order; `#written` counts the leading run of finished ones. */
  #finished(index: number): void {
    this.#done.add(index);
    while (this.#done.delete(this.#written + 1)) this.#written++;
  }

  /** Writes everything queued and waits for it. */
  async drain(): Promise<void> {
    await this.flush();
    while (this.#writing.length > 0) await this.#writing.shift();
  }

  /**
   * Writes every regular file's content (extras first, then image files in the order their bytes lie
   * in the layers, spans.ts) and returns each inode's mapping. With `verify`, image files are checked
   * against their index sha256 as they pass (ERR_DIGEST_MISMATCH).
   */
  async files(fs: ContainerFS, plan: Plan, { verify, aborted }: { verify: boolean; aborted: () => void }): Promise<Map<number, Mapping>> {
    const out = new Map<number, Mapping>();
    const image: PlanNode[] = [];
    for (const node of plan.nodes) {
      if (!node || (node.mode & S_IFMT) !== S_IFREG) continue;
      if (node.src !== undefined && node.size > 0) image.push(node);
      else out.set(node.ino, await this.#extra(node));
    }
    const buffers = new SpanBuffers();
    let open: { node: PlanNode; extents: Extent[]; verifier?: ContentVerifier; seen: number } | undefined;
    for await (const { buf, bytes: span, pieces } of readSpans(fs, planSpans(fs, image), () => buffers.take(this.#written))) {
      aborted();
      const queued = this.#queued;
      for (const p of pieces) {
        const bytes = span.subarray(p.at, p.at + p.length);
        if (p.fileOffset === 0) open = { node: p.node, extents: [], seen: 0 };
        const f = open!;
        if (verify) (f.verifier ??= fs.verifier(f.node.src!, `/${f.node.path}`)).update(bytes);
        for (let at = 0; at < bytes.length; at += CHUNK) await this.#chunk(bytes.subarray(at, at + CHUNK), (p.fileOffset + at) / BLOCK, f.extents);
        f.seen += p.length;
        if (f.seen === f.node.size) {
          f.verifier?.check();
          out.set(f.node.ino, mapped(f.extents, f.node.size, this));
        }
      }
      // its bytes go out with the next flush at the latest; a span of holes queued none: reused at once
      // (a 5 GiB sparse file took a fresh 2 MiB buffer per span: ~20 s of page faults on these VMs)
      if (this.#queued === queued) buffers.free(buf);
      else buffers.hold(buf, this.#flushes + 1);
    }
    return out;
  }

  /** An extra's content (the guest init, ...), or an empty file. */
  async #extra(node: PlanNode): Promise<Mapping> {
    const extents: Extent[] = [];
    const data = (node.src === undefined && node.data) || EMPTY;
    for (let pos = 0; pos < data.length; pos += CHUNK) await this.#chunk(data.subarray(pos, pos + CHUNK), pos / BLOCK, extents);
    return mapped(extents, data.length, this);
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

/** writev without a copy into one buffer; a short write (rare on a regular file) finishes with plain writes. */
async function writeBuffers(fh: FileHandle, buffers: Buffer[], position: number, bytes: number): Promise<void> {
  const { bytesWritten } = await fh.writev(buffers, position);
  if (bytesWritten < bytes) await writeAtByte(fh, Buffer.concat(buffers, bytes).subarray(bytesWritten), position + bytesWritten);
}

async function writeAtByte(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

