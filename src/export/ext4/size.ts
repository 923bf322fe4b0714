/**
 * Sizing an ext4 image before writing it: metadata blocks are exact after the plan; file data is
 * counted as if it had no holes (holes found while writing only leave more space free), and extent
 * tree blocks as for the most fragmented file possible. Then groups and inodes per group follow.
 */
import { ErrorCode, VmimgError } from '../../errors.js';
import { BLOCK, BLOCKS_PER_GROUP, geometry, MAX_INODES_PER_GROUP, type Geometry } from './format.js';
import { extentTreeBlocks, MAX_EXTENT_BLOCKS } from './inode.js';

const MiB = 2 ** 20;
/** Default headroom: the larger of 64 MiB and a fifth of what the tree takes. */
const DEFAULT_FREE_MIN = 64 * MiB;
/** One free inode per 16 KiB of free space (mke2fs's default inode ratio), at least 1024. */
const BYTES_PER_FREE_INODE = 16384;
/** Blocks the last group gets at least when inodes, not blocks, decided the number of groups. */
const MIN_LAST_GROUP = 2048;

export interface SizeOptions {
  /** Total image size in bytes (a whole number of 4 KiB blocks is used). */
  sizeBytes?: number;
  /** Free space to leave when `sizeBytes` is not given. */
  freeBytes?: number;
}

/** Data plus extent-tree blocks a regular file of `size` bytes can take at most. */
export function fileBlocksUpperBound(size: number): number {
  const blocks = Math.ceil(size / BLOCK);
  const worstExtents = Math.max(Math.ceil(blocks / MAX_EXTENT_BLOCKS), Math.ceil(blocks / 2));
  return blocks + extentTreeBlocks(worstExtents);
}

/** The geometry for `usedInodes` inodes, `metaBlocks` metadata and at most `dataBlocks` data blocks. */
export function chooseGeometry(usedInodes: number, metaBlocks: number, dataBlocks: number, options: SizeOptions): Geometry {
  const content = metaBlocks + dataBlocks;
  const fixed = options.sizeBytes !== undefined ? Math.floor(options.sizeBytes / BLOCK) : undefined;
  const freeWanted = fixed !== undefined ? 0 : Math.ceil((options.freeBytes ?? Math.max(DEFAULT_FREE_MIN, (content * BLOCK) / 5)) / BLOCK);
  const freeForInodes = fixed !== undefined ? Math.max(0, fixed - content) : freeWanted;
  const inodes = usedInodes + Math.max(1024, Math.ceil((freeForInodes * BLOCK) / BYTES_PER_FREE_INODE));
  // a size fixes the groups (free inodes give way); otherwise groups grow until everything fits
  let groups = fixed !== undefined ? Math.max(1, Math.ceil(fixed / BLOCKS_PER_GROUP)) : 1;
  for (;;) {
    const minGroups = Math.ceil(usedInodes / MAX_INODES_PER_GROUP);
    if (groups < minGroups) {
      if (fixed !== undefined) throw tooSmall(options.sizeBytes!, (minGroups - 1) * BLOCKS_PER_GROUP + 1);
      groups = minGroups;
    }
    const ipg = Math.min(MAX_INODES_PER_GROUP, Math.ceil(inodes / groups / 16) * 16);
    const geo = geometry(0, groups, ipg);
    const used = geo.overheadEnd + content;
    if (fixed !== undefined) {
      if (fixed < used) throw tooSmall(options.sizeBytes!, used);
      return geometry(fixed, groups, ipg);
    }
    // more groups than the blocks need (many inodes): give the last group room of its own
    const total = Math.max(used + freeWanted, (groups - 1) * BLOCKS_PER_GROUP + MIN_LAST_GROUP);
    const need = Math.ceil(total / BLOCKS_PER_GROUP);
    if (need === groups) return geometry(total, groups, ipg);
    groups = need;
  }
}

function tooSmall(sizeBytes: number, usedBlocks: number): VmimgError {
  const need = usedBlocks * BLOCK;
  return new VmimgError(ErrorCode.TOO_LARGE, `the image needs ${need} bytes (${Math.ceil(need / MiB)} MiB) as ext4; --size is ${sizeBytes} bytes`, {
    hint: `use --size ${Math.ceil(need / MiB)}M or more, or leave --size out`,
    details: { neededBytes: need, sizeBytes },
  });
}
