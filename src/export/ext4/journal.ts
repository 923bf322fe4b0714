/**
 * An internal jbd2 journal for the ext4 writer (`journal: true`), as mke2fs makes one: inode 8, one
 * contiguous run of blocks right after the metadata area, the journal superblock (v2) in its first
 * block and every other block zero (a hole in the image file), empty (`s_start` 0: nothing to replay).
 * Sizes follow e2fsprogs' default for the filesystem's block count (lib/ext2fs/mkjournal.c,
 * ext2fs_default_journal_size); structures follow the kernel's include/linux/jbd2.h (big-endian).
 */
import { BLOCK } from './format.js';

/** The journal's inode (EXT4_JOURNAL_INO). */
export const JOURNAL_INO = 8;
const JBD2_MAGIC = 0xc03b3998;
const JBD2_SUPERBLOCK_V2 = 4;
/** jbd2 refuses journals under 1024 blocks (JBD2_MIN_JOURNAL_BLOCKS). */
const MIN_JOURNAL_BLOCKS = 1024;

/** [filesystem blocks below which, journal blocks] from ext2fs_default_journal_size (e2fsprogs 1.47). */
const SIZES: [number, number][] = [
  [32768, 1024],
  [256 * 1024, 4096],
  [512 * 1024, 8192],
  [4096 * 1024, 16384],
  [8192 * 1024, 32768],
  [16384 * 1024, 65536],
  [32768 * 1024, 131072],
];

/**
 * mke2fs's journal size in blocks for a filesystem of `fsBlocks` 4 KiB blocks: 4 MiB up to 128 MiB,
 * 16 MiB up to 1 GiB, ... 1 GiB from 128 GiB on. mke2fs makes no journal under 2048 blocks; vmimg
 * then uses jbd2's minimum of 1024 (the size check then asks for room).
 */
export function defaultJournalBlocks(fsBlocks: number): number {
  for (const [below, blocks] of SIZES) if (fsBlocks < below) return Math.max(MIN_JOURNAL_BLOCKS, blocks);
  return 262144;
}

/**
 * The journal size for the filesystem it ends up in: the journal's own blocks make the filesystem
 * bigger, which may call for a bigger journal, so `sizeFor(journalBlocks)` (the filesystem's block
 * count with that journal) is asked again until the two agree; the sizes only grow, so this ends.
 */
export function settleJournalBlocks(sizeFor: (journalBlocks: number) => number): number {
  let blocks = defaultJournalBlocks(sizeFor(0));
  for (let next = defaultJournalBlocks(sizeFor(blocks)); next !== blocks; next = defaultJournalBlocks(sizeFor(blocks))) blocks = next;
  return blocks;
}

/** The journal superblock (one block): v2, `blocks` long, log from block 1, sequence 1, empty, the filesystem's UUID. */
export function journalSuperblock(blocks: number, uuid: Buffer): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.writeUInt32BE(JBD2_MAGIC, 0x0); // h_magic
  b.writeUInt32BE(JBD2_SUPERBLOCK_V2, 0x4); // h_blocktype
  b.writeUInt32BE(BLOCK, 0xc); // s_blocksize
  b.writeUInt32BE(blocks, 0x10); // s_maxlen
  b.writeUInt32BE(1, 0x14); // s_first: the log starts right after this block
  b.writeUInt32BE(1, 0x18); // s_sequence: the first transaction's ID
  // s_start (0x1c) stays 0: the journal is empty, nothing to recover; no features (0x24-0x2f)
  uuid.copy(b, 0x30, 0, 16); // s_uuid
  b.writeUInt32BE(1, 0x40); // s_nr_users: one filesystem (its own)
  return b;
}
