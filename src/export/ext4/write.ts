/**
 * The second pass of the ext4 writer: file data streamed into the data area (all-zero 4 KiB blocks
 * left unmapped, i.e. holes), directories, slow symlinks and xattr blocks into the metadata area,
 * then inode table, bitmaps, group descriptors and superblock. One output file, positional writes,
 * the image file sparse where nothing was written.
 *
 * Block layout: [superblock, group descriptors, bitmaps, inode tables] [directories, symlinks,
 * xattr blocks] [the journal, if any] [file data in layer order (each layer's files as they lie in its .contents), each
 * file's blocks contiguous and 4 KiB aligned] [free].
 */
import type { FileHandle } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../../errors.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../layer/entry.js';
import type { ContainerFS } from '../../vfs/index.js';
import { splitDev } from '../walk.js';
import { DataWriter, mapped, writeAt, type Mapping } from './data.js';
import { dirBlocks, encodeDir } from './dirent.js';
import { BLOCK, BLOCKS_PER_GROUP, groupDescriptor, INODE_SIZE, superblock, type Geometry, type SuperblockFields } from './format.js';
import { deviceIblock, encodeInode, MAX_EXTENT_BLOCKS, type Extent } from './inode.js';
import { JOURNAL_INO, journalSuperblock } from './journal.js';
import type { Plan } from './plan.js';
import { placeXattrs, setRefcount, type XattrPlacement } from './xattr.js';

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

export interface WriteOptions {
  uuid: Buffer;
  label: string;
  verify: boolean;
  /** Blocks of an internal journal after the metadata area (journal.ts); 0 or absent: none. */
  journalBlocks?: number;
  signal?: AbortSignal;
}

/** Writes the whole filesystem into `fh` (already truncated to the image size). */
export async function writeFilesystem(fs: ContainerFS, plan: Plan, meta: MetaLayout, geo: Geometry, fh: FileHandle, sb: WriteOptions): Promise<WriteStats> {
  const metaStart = geo.overheadEnd;
  const metaBuf = Buffer.alloc(meta.blocks * BLOCK);
  const table = Buffer.alloc(plan.lastIno * INODE_SIZE);
  const journalStart = metaStart + meta.blocks;
  const journalBlocks = sb.journalBlocks ?? 0;
  const data = new DataWriter(fh, journalStart + journalBlocks);
  const journal = journalBlocks > 0 ? mapped(runs(journalStart, journalBlocks), journalBlocks * BLOCK, data) : undefined;
  for (const s of meta.xattrBlocks) s.data.copy(metaBuf, s.at * BLOCK);
  const usedDirs = new Array<number>(geo.groups).fill(0);
  const aborted = (): void => {
    if (sb.signal?.aborted) throw new VmimgError(ErrorCode.ABORTED, 'ext4 export cancelled');
  };
  const files = await data.files(fs, plan, { verify: sb.verify, aborted });
  for (let ino = 1; ino <= plan.lastIno; ino++) {
    const node = plan.nodes[ino];
    if (!node) continue;
    if (ino % 4096 === 0) aborted();
    const type = node.mode & S_IFMT;
    let content: Mapping;
    if (type === S_IFDIR) {
      usedDirs[Math.floor((ino - 1) / geo.inodesPerGroup)]!++;
      const d = meta.dirBlock.get(ino)!;
      encodeDir(ino, node.parent ?? ino, node.children ?? []).copy(metaBuf, d.at * BLOCK);
      for (let b = dirBlocks(node.children ?? []); b < d.count; b++) metaBuf.writeUInt16LE(BLOCK, (d.at + b) * BLOCK + 4); // empty blocks
      content = mapped(runs(metaStart + d.at, d.count), d.count * BLOCK, data);
    } else if (type === S_IFREG) {
      content = files.get(ino)!;
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
  if (journal) {
    const sectors = journal.blocks * (BLOCK / 512);
    encodeInode({ mode: S_IFREG | 0o600, uid: 0, gid: 0, size: journal.size, sec: 0, nsec: 0, links: 1, sectors, flags: journal.flags, iblock: journal.iblock, xattrBlock: 0 }, table, (JOURNAL_INO - 1) * INODE_SIZE);
    await writeAt(fh, journalSuperblock(journalBlocks, sb.uuid), journalStart); // the other blocks stay holes: zeros
  }
  await data.drain();
  await writeAt(fh, metaBuf, metaStart);
  await writeAt(fh, table, geo.inodeTableStart);
  const usedBlocks = data.next;
  const jsb = journal ? { journal: { ino: JOURNAL_INO, iblock: journal.iblock, size: journal.size } } : {};
  await writeTables(fh, geo, usedBlocks, plan.lastIno, usedDirs, { ...sb, ...jsb });
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

/** Bitmaps, group descriptors and the superblock: every block below `usedBlocks` is in use. */
async function writeTables(fh: FileHandle, geo: Geometry, usedBlocks: number, lastIno: number, usedDirs: number[], sb: Pick<SuperblockFields, 'uuid' | 'label' | 'journal'>): Promise<void> {
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
  const sbBuf = superblock({ ...sb, geo, freeBlocks: geo.blocks - usedBlocks, freeInodes: geo.groups * geo.inodesPerGroup - lastIno, time: 0 });
  await fh.write(sbBuf, 0, sbBuf.length, 1024);
}

function setBits(buf: Buffer, base: number, from: number, to: number): void {
  let i = from;
  for (; i < to && i % 8 !== 0; i++) buf[base + (i >> 3)]! |= 1 << (i & 7);
  for (; i + 8 <= to; i += 8) buf[base + (i >> 3)] = 0xff;
  for (; i < to; i++) buf[base + (i >> 3)]! |= 1 << (i & 7);
}

