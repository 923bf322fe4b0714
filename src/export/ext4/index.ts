/**
 * ext4 export: an ext4 filesystem image written by vmimg from ContainerFS, without mkfs, loop
 * devices or root. Format and limits: docs/EXPORT.md ("ext4"); why our own writer: docs/DECISIONS.md.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../../errors.js';
import { commandLine, type RuntimeConfig } from '../../image/runtime-config.js';
import { S_IFMT, S_IFREG } from '../../layer/entry.js';
import { makedev, type ContainerFS } from '../../vfs/index.js';
import { guestEntries } from '../guest-entries.js';
import { guestConfig } from '../guest-init.js';
import { requireShell } from '../initramfs.js';
import { isImage, withFs, type ExportSource } from '../source.js';
import { BLOCK } from './format.js';
import { planTree, type ExtraEntry } from './plan.js';
import { settleJournalBlocks } from './journal.js';
import { chooseGeometry, fileBlocksUpperBound } from './size.js';
import { layoutMeta, writeFilesystem } from './write.js';

export type { ExtraEntry } from './plan.js';

export interface Ext4Options {
  /** Total image size in bytes (whole 4 KiB blocks); too small → ERR_TOO_LARGE with the size needed. */
  sizeBytes?: number;
  /** Free space to leave when `sizeBytes` is not given (default: the larger of 64 MiB and 20% of the content). */
  freeBytes?: number;
  /** Add the vmimg guest init as /.vmimg/init + /.vmimg/config (default true; needs the runtime config). */
  init?: boolean;
  /** Runtime config when the source is a bare ContainerFS. */
  config?: RuntimeConfig;
  /** Replaces the image's cmd for the guest init. */
  command?: string[];
  /** Replaces the image's entrypoint for the guest init. */
  entrypoint?: string[];
  /** Volume label (at most 16 bytes; default "vmimg"). */
  label?: string;
  /** What the filesystem UUID is derived from (default: the image's config digest). */
  seed?: string;
  signal?: AbortSignal;
  /** Check every file's bytes against its index sha256 (default true): ERR_DIGEST_MISMATCH naming the file. */
  verify?: boolean;
  /**
   * An internal jbd2 journal (inode 8, sized as mke2fs would for the filesystem's size: 4 MiB up to
   * 128 MiB, 16 MiB up to 1 GiB, 64 MiB up to 16 GiB, ...), for a disk the guest keeps writing to
   * (`--persist`). Default false: a read-mostly root booted with snapshot=on needs none.
   */
  journal?: boolean;
  /** Hears each image entry the guest init's own entries replace (a symlinked /dev, /proc, ...). */
  onWarning?: (message: string) => void;
}

export interface Ext4Result {
  /** Size of the image file in bytes. */
  sizeBytes: number;
  /** Bytes in use (metadata and data); the rest is free space for the guest. */
  usedBytes: number;
  /** Inodes in use (including ext4's reserved ones) and in total. */
  inodes: number;
  inodesTotal: number;
  /** All-zero 4 KiB blocks of files left as holes. */
  holeBlocks: number;
  /** Blocks of the internal journal (0 without `journal`). */
  journalBlocks: number;
  uuid: string;
  /** The command the guest init runs (when `init`). */
  argv: string[];
  /** Image entries the guest init's entries replaced (a /dev symlink, ...), as for the initramfs. */
  warnings: string[];
}

/**
 * Writes `source` as an ext4 filesystem image to `path` (created or replaced; a regular file, sparse
 * where nothing was written). Same input, same bytes: the UUID comes from `seed`, timestamps in the
 * superblock are fixed. File content is streamed in reads of at most 2 MiB, never held whole.
 */
export async function exportExt4(source: ExportSource, path: string, options: Ext4Options = {}): Promise<Ext4Result> {
  const config = isImage(source) ? source.config : options.config;
  const withInit = options.init ?? true;
  if (withInit && !config) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'ext4 with the guest init needs the runtime config', { hint: 'pass an Image, or options.config, or init: false' });
  }
  const seed = options.seed ?? config?.source.configDigest ?? 'vmimg';
  return withFs(source, async (fs) => {
    let argv: string[] = [];
    const extras: ExtraEntry[] = [];
    const warnings: string[] = [];
    if (withInit) {
      requireShell(fs);
      const merged = { ...config!, entrypoint: options.entrypoint ?? config!.entrypoint };
      argv = commandLine(merged, options.command);
      extras.push(...guestExtras(fs, guestConfig(merged, argv), (m) => {
        warnings.push(m);
        options.onWarning?.(m);
      }));
    }
    return { ...(await writeImage(fs, path, extras, seed, options)), argv, warnings };
  });
}

/**
 * The initramfs's guest entries (export/guest-entries.ts) as ext4 extras: /.vmimg/{init,config}, real
 * directories for mount points the image has as symlinks or files, /dev and /dev/console. No /init
 * symlink: a disk boot names the init itself.
 */
function guestExtras(fs: ContainerFS, configText: string, warn: (message: string) => void): ExtraEntry[] {
  return guestEntries(fs, configText, true, warn).entries.map((e) => ({
    path: e.header.name,
    mode: e.header.mode,
    ...(e.data ? { data: e.data } : {}),
    ...(e.header.rdevMajor !== undefined ? { rdev: makedev(e.header.rdevMajor, e.header.rdevMinor ?? 0) } : {}),
  }));
}

/** A version-5-style UUID from `seed`: the same image always gets the same filesystem UUID. */
export function uuidFrom(seed: string): Buffer {
  const b = createHash('sha256').update(`vmimg ext4 ${seed}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function writeImage(fs: ContainerFS, path: string, extras: ExtraEntry[], seed: string, options: Ext4Options): Promise<Omit<Ext4Result, 'argv' | 'warnings'>> {
  const plan = planTree(fs, extras);
  const meta = layoutMeta(plan);
  let dataUpper = 0;
  for (const node of plan.nodes) if (node && (node.mode & S_IFMT) === S_IFREG) dataUpper += fileBlocksUpperBound(node.size);
  // a journal is sized for the filesystem it makes bigger (journal.ts)
  const journalBlocks = options.journal ? settleJournalBlocks((j) => chooseGeometry(plan.lastIno, meta.blocks + j, dataUpper, options).blocks) : 0;
  const geo = chooseGeometry(plan.lastIno, meta.blocks + journalBlocks, dataUpper, options);
  const uuid = uuidFrom(seed);
  const fh = await open(path, 'w');
  try {
    await fh.truncate(geo.blocks * BLOCK);
    const stats = await writeFilesystem(fs, plan, meta, geo, fh, { uuid, label: options.label ?? 'vmimg', verify: options.verify ?? true, journalBlocks, ...(options.signal ? { signal: options.signal } : {}) });
    return {
      sizeBytes: geo.blocks * BLOCK,
      usedBytes: stats.usedBlocks * BLOCK,
      inodes: plan.lastIno,
      inodesTotal: geo.groups * geo.inodesPerGroup,
      holeBlocks: stats.holeBlocks,
      journalBlocks,
      uuid: formatUuid(uuid),
    };
  } finally {
    await fh.close();
  }
}
