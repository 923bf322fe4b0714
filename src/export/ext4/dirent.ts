/**
 * Linear ext4 directories (struct ext4_dir_entry_2): '.' and '..' first, then the children in name
 * order, packed into 4 KiB blocks; the last entry of a block stretches to its end. No htree index:
 * e2fsck and the kernel accept linear directories of any size (lookups are linear scans).
 */
import { BLOCK } from './format.js';
import type { Child } from './plan.js';

const recLen = (nameLen: number): number => (8 + nameLen + 3) & ~3;

/** Blocks a directory with these children takes. */
export function dirBlocks(children: readonly Child[]): number {
  let blocks = 1;
  let used = recLen(1) + recLen(2);
  for (const c of children) {
    const n = recLen(c.name.length);
    if (used + n > BLOCK) {
      blocks++;
      used = 0;
    }
    used += n;
  }
  return blocks;
}

/** The directory's blocks, `dirBlocks(children)` of them. */
export function encodeDir(self: number, parent: number, children: readonly Child[]): Buffer {
  const out = Buffer.alloc(dirBlocks(children) * BLOCK);
  let blockStart = 0;
  let at = 0;
  let last = -1;
  const put = (ino: number, name: Buffer, type: number): void => {
    const n = recLen(name.length);
    if (at + n > blockStart + BLOCK) {
      out.writeUInt16LE(blockStart + BLOCK - last, last + 4); // stretch the block's last entry
      blockStart += BLOCK;
      at = blockStart;
    }
    out.writeUInt32LE(ino, at);
    out.writeUInt16LE(n, at + 4);
    out.writeUInt8(name.length, at + 6);
    out.writeUInt8(type, at + 7);
    name.copy(out, at + 8);
    last = at;
    at += n;
  };
  put(self, Buffer.from('.'), 2);
  put(parent, Buffer.from('..'), 2);
  for (const c of children) put(c.ino, c.name, c.type);
  out.writeUInt16LE(blockStart + BLOCK - last, last + 4);
  return out;
}
