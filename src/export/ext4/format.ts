/**
 * ext4 on-disk structures vmimg writes: the superblock and 32-byte group descriptors (no 64bit
 * feature), with the feature set docs/EXPORT.md lists. Field offsets follow the kernel's
 * fs/ext4/ext4.h (struct ext4_super_block, struct ext4_group_desc) and e2fsprogs' ext2_fs.h.
 */

export const BLOCK = 4096;
export const INODE_SIZE = 256;
/** Bytes of the inode past the 128-byte base that vmimg uses: ns timestamps and crtime. */
export const EXTRA_ISIZE = 32;
export const BLOCKS_PER_GROUP = 8 * BLOCK;
export const MAX_INODES_PER_GROUP = 8 * BLOCK;
export const FIRST_INO = 11;
export const ROOT_INO = 2;
export const DESC_SIZE = 32;

export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_EXT_ATTR = 0x8;
export const COMPAT_SPARSE_SUPER2 = 0x200;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_FLEX_BG = 0x200;
export const RO_COMPAT_LARGE_FILE = 0x2;
export const RO_COMPAT_DIR_NLINK = 0x20;
export const RO_COMPAT_EXTRA_ISIZE = 0x40;

export interface Geometry {
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  /** First block of the group descriptor table (block 1: the superblock sits in block 0 at byte 1024). */
  gdtStart: number;
  gdtBlocks: number;
  /** flex_bg: every group's block bitmap, then every inode bitmap, then every inode table, back to back. */
  blockBitmapStart: number;
  inodeBitmapStart: number;
  inodeTableStart: number;
  inodeTableBlocksPerGroup: number;
  /** First block after the fixed metadata. */
  overheadEnd: number;
}

/** Fixed metadata placement for `groups` groups of `inodesPerGroup` inodes in `blocks` blocks. */
export function geometry(blocks: number, groups: number, inodesPerGroup: number): Geometry {
  const gdtBlocks = Math.ceil((groups * DESC_SIZE) / BLOCK);
  const blockBitmapStart = 1 + gdtBlocks;
  const inodeBitmapStart = blockBitmapStart + groups;
  const inodeTableStart = inodeBitmapStart + groups;
  const inodeTableBlocksPerGroup = (inodesPerGroup * INODE_SIZE) / BLOCK;
  const overheadEnd = inodeTableStart + groups * inodeTableBlocksPerGroup;
  return { blocks, groups, inodesPerGroup, gdtStart: 1, gdtBlocks, blockBitmapStart, inodeBitmapStart, inodeTableStart, inodeTableBlocksPerGroup, overheadEnd };
}

export interface SuperblockFields {
  geo: Geometry;
  freeBlocks: number;
  freeInodes: number;
  uuid: Buffer;
  label: string;
  /** Fixed time written into the superblock (seconds): deterministic output. */
  time: number;
  /** An internal journal: its inode number, and that inode's i_block and size (backed up in the superblock). */
  journal?: { ino: number; iblock: Buffer; size: number };
}

/** The 1024-byte superblock (written at byte 1024 of the image). */
export function superblock(f: SuperblockFields): Buffer {
  const b = Buffer.alloc(1024);
  const { geo } = f;
  b.writeUInt32LE(geo.groups * geo.inodesPerGroup, 0x0); // s_inodes_count
  b.writeUInt32LE(geo.blocks, 0x4); // s_blocks_count_lo
  b.writeUInt32LE(0, 0x8); // s_r_blocks_count_lo: no reserved blocks on a VM root
  b.writeUInt32LE(f.freeBlocks, 0xc);
  b.writeUInt32LE(f.freeInodes, 0x10);
  b.writeUInt32LE(0, 0x14); // s_first_data_block: 0 for 4 KiB blocks
  b.writeUInt32LE(2, 0x18); // s_log_block_size: 1024 << 2
  b.writeUInt32LE(2, 0x1c); // s_log_cluster_size
  b.writeUInt32LE(BLOCKS_PER_GROUP, 0x20);
  b.writeUInt32LE(BLOCKS_PER_GROUP, 0x24); // s_clusters_per_group
  b.writeUInt32LE(geo.inodesPerGroup, 0x28);
  b.writeUInt32LE(0, 0x2c); // s_mtime
  b.writeUInt32LE(f.time, 0x30); // s_wtime
  b.writeUInt16LE(0, 0x34); // s_mnt_count
  b.writeUInt16LE(0xffff, 0x36); // s_max_mnt_count: -1, no forced checks
  b.writeUInt16LE(0xef53, 0x38); // s_magic
  b.writeUInt16LE(1, 0x3a); // s_state: clean
  b.writeUInt16LE(1, 0x3c); // s_errors: continue
  b.writeUInt32LE(f.time, 0x40); // s_lastcheck
  b.writeUInt32LE(0, 0x48); // s_creator_os: Linux
  b.writeUInt32LE(1, 0x4c); // s_rev_level: dynamic
  b.writeUInt32LE(FIRST_INO, 0x54);
  b.writeUInt16LE(INODE_SIZE, 0x58);
  b.writeUInt32LE(COMPAT_EXT_ATTR | COMPAT_SPARSE_SUPER2 | (f.journal ? COMPAT_HAS_JOURNAL : 0), 0x5c);
  b.writeUInt32LE(INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG, 0x60);
  b.writeUInt32LE(RO_COMPAT_LARGE_FILE | RO_COMPAT_DIR_NLINK | RO_COMPAT_EXTRA_ISIZE, 0x64);
  f.uuid.copy(b, 0x68, 0, 16);
  Buffer.from(f.label, 'utf8').subarray(0, 16).copy(b, 0x78);
  f.uuid.copy(b, 0xec, 0, 16); // s_hash_seed (unused without dir_index, but set like mke2fs)
  b.writeUInt8(1, 0xfc); // s_def_hash_version: half_md4
  b.writeUInt32LE(f.time, 0x108); // s_mkfs_time
  b.writeUInt16LE(EXTRA_ISIZE, 0x15c); // s_min_extra_isize
  b.writeUInt16LE(EXTRA_ISIZE, 0x15e); // s_want_extra_isize
  b.writeUInt32LE(0x2, 0x160); // s_flags: unsigned directory hash
  b.writeUInt8(4, 0x174); // s_log_groups_per_flex: 16
  if (f.journal) {
    b.writeUInt32LE(f.journal.ino, 0xe0); // s_journal_inum
    b.writeUInt8(1, 0xfd); // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS, as mke2fs
    f.journal.iblock.copy(b, 0x10c, 0, 60); // s_jnl_blocks[0..14]: the inode's i_block
    b.writeUInt32LE(Math.floor(f.journal.size / 2 ** 32), 0x10c + 15 * 4); // [15]: i_size_high
    b.writeUInt32LE(f.journal.size % 2 ** 32, 0x10c + 16 * 4); // [16]: i_size
  }
  // s_backup_bgs (0x24c) stay 0: with sparse_super2 there are no backup superblocks to get in the way
  return b;
}

export interface GroupCounts {
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
}

/** One 32-byte group descriptor. */
export function groupDescriptor(geo: Geometry, group: number, c: GroupCounts): Buffer {
  const b = Buffer.alloc(DESC_SIZE);
  b.writeUInt32LE(geo.blockBitmapStart + group, 0);
  b.writeUInt32LE(geo.inodeBitmapStart + group, 4);
  b.writeUInt32LE(geo.inodeTableStart + group * geo.inodeTableBlocksPerGroup, 8);
  b.writeUInt16LE(c.freeBlocks, 12);
  b.writeUInt16LE(c.freeInodes, 14);
  b.writeUInt16LE(c.usedDirs, 16);
  return b;
}
