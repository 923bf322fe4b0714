/**
 * The second pass of the ext4 writer: file data streamed into the data area (all-zero 4 KiB blocks
 * left unmapped, i.e. holes), directories, slow symlinks and xattr blocks into the metadata area,
 * then inode table, bitmaps, group descriptors and superblock. One output file, positional writes,
 * the image file sparse where nothing was written.
 *
 * Block layout: [superblock, group descriptors, bitmaps, inode tables] [directories, symlinks,
 * xattr blocks] [file data in inode order, each file's blocks contiguous and 4 KiB aligned] [free].
 */
import type { FileHandle } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../../errors.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../layer/entry.js';
import type { ContainerFS } from '../../vfs/index.js';
import { shortRead, splitDev } from '../walk.js';
import { dirBlocks, encodeDir } from './dirent.js';
import { BLOCK, BLOCKS_PER_GROUP, groupDescriptor, INODE_SIZE, superblock, type Geometry } from './format.js';
import { buildExtentTree, deviceIblock, encodeInode, EXT4_EXTENTS_FL, MAX_EXTENT_BLOCKS, type Extent } from './inode.js';
import type { Plan, PlanNode } from './plan.js';
import { placeXattrs, setRefcount, type XattrPlacement } from './xattr.js';

const CHUNK = 1 << 20;
/** Data-area writes are gathered up to this size. */
const FLUSH_BYTES = 4 << 20;
const ZERO = Buffer.alloc(BLOCK);
const ZERO_CHUNK = Buffer.alloc(CHUNK);
/** Directories take at least this many blocks for lost+found, as mke2fs makes it (room to reconnect). */
const LOST_FOUND_BLOCKS = 4;
/** dir_nlink: a directory with more subdirectories than this has link count 1. */
const MAX_DIR_LINKS = 65000;

/** Metadata-area placement decided before writing: blocks per node, shared xattr blocks. */
export interface MetaLayout {
  blocks: number;
  dirBlock: Map<number, { at: number; count: number }>;
  symlinkBlock: Map<number, number>;
  xattr: Map<number, XattrPlacement & { at?: number }>;
  xattrBlocks: { at: number; data: Buffer; refs: number }[];
}

/** Counts the metadata area (relative block numbers from 0) and checks per-node limits. */
export function layoutMeta(plan: Plan): MetaLayout {
  const m: MetaLayout = { blocks: 0, dirBlock: new Map(), symlinkBlock: new Map(), xattr: new Map(), xattrBlocks: [] };
  const shared = new Map<string, { at: number; data: Buffer; refs: number }>();
  for (const node of plan.nodes) {
    if (!node) continue;
    const type = node.mode & S_IFMT;
    if (type === S_IFDIR) {
      const count = Math.max(dirBlocks(node.children ?? []), node.path === 'lost+found' && node.src === undefined ? LOST_FOUND_BLOCKS : 1);
      m.dirBlock.set(node.ino, { at: m.blocks, count });
      m.blocks += count;
    } else if (type === S_IFLNK && node.size >= 60) {
      if (node.size >= BLOCK) throw new VmimgError(ErrorCode.TOO_LARGE, `/${node.path}: a symlink target of ${node.size} bytes (ext4 holds at most ${BLOCK - 1})`);
      m.symlinkBlock.set(node.ino, m.blocks++);
    }
    const x = placeXattrs(node.xattrs, node.path);
    if (x.kind === 'block') {
      let s = shared.get(x.key);
      if (!s) {
        s = { at: m.blocks++, data: x.block, refs: 0 };
        shared.set(x.key, s);
        m.xattrBlocks.push(s);
      }
      s.refs++;
      m.xattr.set(node.ino, { ...x, at: s.at });
    } else if (x.kind === 'inline') {
      m.xattr.set(node.ino, x);
    }
  }
  for (const s of m.xattrBlocks) setRefcount(s.data, s.refs);
  return m;
}

export interface WriteStats {
  usedBlocks: number;
  dataBlocks: number;
  holeBlocks: number;
}

/** Writes the whole filesystem into `fh` (already truncated to the image size). */
export async function writeFilesystem(fs: ContainerFS, plan: Plan, meta: MetaLayout, geo: Geometry, fh: FileHandle, sb: { uuid: Buffer; label: string; signal?: AbortSignal }): Promise<WriteStats> {
  const metaStart = geo.overheadEnd;
  const metaBuf = Buffer.alloc(meta.blocks * BLOCK);
  const table = Buffer.alloc(plan.lastIno * INODE_SIZE);
  const data = new DataWriter(fh, metaStart + meta.blocks);
  for (const s of meta.xattrBlocks) s.data.copy(metaBuf, s.at * BLOCK);
  const usedDirs = new Array<number>(geo.groups).fill(0);
  for (let ino = 1; ino <= plan.lastIno; ino++) {
    const node = plan.nodes[ino];
    if (!node) continue;
    if (sb.signal?.aborted) throw new VmimgError(ErrorCode.ABORTED, 'ext4 export cancelled');
    const type = node.mode & S_IFMT;
    let content: { iblock: Buffer; blocks: number; flags: number; size: number };
    if (type === S_IFDIR) {
      usedDirs[Math.floor((ino - 1) / geo.inodesPerGroup)]!++;
      const d = meta.dirBlock.get(ino)!;
      encodeDir(ino, node.parent ?? ino, node.children ?? []).copy(metaBuf, d.at * BLOCK);
      for (let b = dirBlocks(node.children ?? []); b < d.count; b++) metaBuf.writeUInt16LE(BLOCK, (d.at + b) * BLOCK + 4); // empty blocks
      content = mapped(runs(metaStart + d.at, d.count), d.count * BLOCK, data);
    } else if (type === S_IFREG) {
      content = await data.file(fs, node);
    } else if (type === S_IFLNK) {
      const at = meta.symlinkBlock.get(ino);
      if (at === undefined) content = { iblock: padTo60(node.data!), blocks: 0, flags: 0, size: node.size };
      else {
        node.data!.copy(metaBuf, at * BLOCK);
        content = mapped(runs(metaStart + at, 1), node.size, data);
      }
    } else if (type === S_IFCHR || type === S_IFBLK) {
      const { major, minor } = splitDev(node.rdev);
      content = { iblock: deviceIblock(major, minor), blocks: 0, flags: 0, size: 0 };
    } else {
      content = { iblock: Buffer.alloc(60), blocks: 0, flags: 0, size: 0 };
    }
    const x = meta.xattr.get(ino);
    encodeInode(
      {
        mode: node.mode, uid: node.uid, gid: node.gid, size: content.size, sec: node.sec, nsec: node.nsec,
        links: type === S_IFDIR && node.links > MAX_DIR_LINKS ? 1 : node.links,
        sectors: (content.blocks + (x?.kind === 'block' ? 1 : 0)) * (BLOCK / 512),
        flags: content.flags, iblock: content.iblock,
        xattrBlock: x?.kind === 'block' ? metaStart + x.at! : 0,
        ...(x?.kind === 'inline' ? { inlineXattrs: x.area } : {}),
      },
      table,
      (ino - 1) * INODE_SIZE,
    );
  }
  await data.flush();
  await writeAt(fh, metaBuf, metaStart);
  await writeAt(fh, table, geo.inodeTableStart);
  const usedBlocks = data.next;
  await writeTables(fh, geo, usedBlocks, plan.lastIno, usedDirs, sb);
  return { usedBlocks, dataBlocks: data.dataBlocks, holeBlocks: data.holeBlocks };
}

function padTo60(b: Buffer): Buffer {
  const out = Buffer.alloc(60);
  b.copy(out);
  return out;
}

/** Extents covering `count` blocks from `physical` (logical 0 on). */
function runs(physical: number, count: number): Extent[] {
  const out: Extent[] = [];
  for (let done = 0; done < count; done += MAX_EXTENT_BLOCKS) out.push({ logical: done, physical: physical + done, length: Math.min(MAX_EXTENT_BLOCKS, count - done) });
  return out;
}

/** An extent-mapped inode's i_block and block count; tree blocks (if any) come from the data writer. */
function mapped(extents: Extent[], size: number, data: DataWriter): { iblock: Buffer; blocks: number; flags: number; size: number } {
  const tree = buildExtentTree(extents, (n) => data.allocate(n));
  for (const b of tree.blocks) data.queueBlocks(b.at, b.data, 1);
  const blocks = extents.reduce((n, e) => n + e.length, 0) + tree.blocks.length;
  return { iblock: tree.iblock, blocks, flags: EXT4_EXTENTS_FL, size };
}

async function writeAt(fh: FileHandle, buf: Buffer, block: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, block * BLOCK + done);
    done += bytesWritten;
  }
}

/** Bitmaps, group descriptors and the superblock: every block below `usedBlocks` is in use. */
async function writeTables(fh: FileHandle, geo: Geometry, usedBlocks: number, lastIno: number, usedDirs: number[], sb: { uuid: Buffer; label: string }): Promise<void> {
  const blockBitmaps = Buffer.alloc(geo.groups * BLOCK);
  const inodeBitmaps = Buffer.alloc(geo.groups * BLOCK);
  const gdt = Buffer.alloc(geo.gdtBlocks * BLOCK);
  for (let g = 0; g < geo.groups; g++) {
    const first = g * BLOCKS_PER_GROUP;
    const inGroup = Math.min(BLOCKS_PER_GROUP, geo.blocks - first);
    const usedHere = Math.max(0, Math.min(inGroup, usedBlocks - first));
    // bits past the group's last block (last group) and past inodes_per_group are set, as e2fsck expects
    setBits(blockBitmaps, g * BLOCK, 0, usedHere);
    setBits(blockBitmaps, g * BLOCK, inGroup, BLOCKS_PER_GROUP);
    const inodesUsed = Math.max(0, Math.min(geo.inodesPerGroup, lastIno - g * geo.inodesPerGroup));
    setBits(inodeBitmaps, g * BLOCK, 0, inodesUsed);
    setBits(inodeBitmaps, g * BLOCK, geo.inodesPerGroup, BLOCK * 8);
    groupDescriptor(geo, g, { freeBlocks: inGroup - usedHere, freeInodes: geo.inodesPerGroup - inodesUsed, usedDirs: usedDirs[g]! }).copy(gdt, g * 32);
  }
  await writeAt(fh, blockBitmaps, geo.blockBitmapStart);
  await writeAt(fh, inodeBitmaps, geo.inodeBitmapStart);
  await writeAt(fh, gdt, geo.gdtStart);
  const sbBuf = superblock({ geo, freeBlocks: geo.blocks - usedBlocks, freeInodes: geo.groups * geo.inodesPerGroup - lastIno, uuid: sb.uuid, label: sb.label, time: 0 });
  await fh.write(sbBuf, 0, sbBuf.length, 1024);
}

function setBits(buf: Buffer, base: number, from: number, to: number): void {
  let i = from;
  for (; i < to && i % 8 !== 0; i++) buf[base + (i >> 3)]! |= 1 << (i & 7);
  for (; i + 8 <= to; i += 8) buf[base + (i >> 3)] = 0xff;
  for (; i < to; i++) buf[base + (i >> 3)]! |= 1 << (i & 7);
}

/**
 * Allocates data-area blocks in order and writes file content into them, leaving zero blocks as holes.
 * Allocation is sequential, so every write lands right after the previous one: writes are gathered
 * into one buffer and flushed a few MiB at a time.
 */
class DataWriter {
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
    if (this.#pendingBytes >= FLUSH_BYTES) await this.flush();
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
    await writeAt(this.fh, Buffer.concat(this.#pending, this.#pendingBytes), this.#pendingStart);
    this.#pending.length = 0;
    this.#pendingStart += this.#pendingBytes / BLOCK;
    this.#pendingBytes = 0;
  }

  /** Streams a regular file's content into the data area; returns its inode mapping. */
  async file(fs: ContainerFS, node: PlanNode): Promise<{ iblock: Buffer; blocks: number; flags: number; size: number }> {
    const extents: Extent[] = [];
    const size = node.size;
    // image files are checked against their index sha256 as they pass (ERR_DIGEST_MISMATCH)
    const verifier = node.src === undefined ? undefined : fs.verifier(node.src, `/${node.path}`);
    for (let pos = 0; pos < size; ) {
      const buf = node.src === undefined ? node.data!.subarray(pos, pos + CHUNK) : await fs.read(node.src, pos, Math.min(CHUNK, size - pos));
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
