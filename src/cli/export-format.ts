/**
 * `vmimg export DEST`: the format (and compression) a destination's name asks for, checked against
 * --format, and one line saying what was written.
 *   .tar → tar · .tar.gz/.tgz → gzip tar · .cpio → plain initramfs · .cpio.gz → gzip initramfs ·
 *   .img/.ext4 → ext4 · anything else → the directory format (or what --format says).
 */
import type { ExportFormat, ExportResult } from '../export/index.js';
import { humanBytes, plural } from './format.js';
import { UsageError } from './exit-codes.js';

export interface ExportTarget {
  format: ExportFormat;
  /** gzip the tar/cpio stream; undefined leaves the format's own default (initramfs: gzip). */
  gzip?: boolean;
}

/** Endings that name a format, longest first (`.tar.gz` before `.gz`). */
const ENDINGS: [string, ExportTarget][] = [
  ['.tar.gz', { format: 'tar', gzip: true }],
  ['.tgz', { format: 'tar', gzip: true }],
  ['.tar', { format: 'tar', gzip: false }],
  ['.cpio.gz', { format: 'initramfs', gzip: true }],
  ['.cpio', { format: 'initramfs', gzip: false }],
  ['.img', { format: 'ext4' }],
  ['.ext4', { format: 'ext4' }],
];

/** What `dest`'s name says (undefined: nothing), e.g. `root.cpio` → plain initramfs. */
export function targetFromName(dest: string): (ExportTarget & { ending: string }) | undefined {
  const lower = dest.toLowerCase();
  const hit = ENDINGS.find(([ending]) => lower.endsWith(ending) && lower.length > ending.length && !lower.endsWith(`/${ending}`));
  return hit ? { ...hit[1], ending: hit[0] } : undefined;
}

/**
 * The export target for `dest` and --format: the name decides when --format is absent; a --format
 * the name contradicts (`--format initramfs x.tar`) is a usage error. Stdout (`-`) takes --format only.
 */
export function exportTarget(dest: string, format: ExportFormat | undefined, toStdout: boolean): ExportTarget {
  const named = toStdout ? undefined : targetFromName(dest);
  if (format === undefined) return named ? { format: named.format, ...(named.gzip !== undefined ? { gzip: named.gzip } : {}) } : { format: 'dir' };
  if (named && named.format !== format) {
    throw new UsageError(`--format ${format} contradicts the file name ${dest} (${named.ending} is ${describeTarget(named)})`, {
      hint: `drop --format to write ${describeTarget(named)}, or ${format === 'dir' ? 'give the directory a name without that ending' : `name the file for ${format}`}`,
    });
  }
  return { format, ...(named?.gzip !== undefined ? { gzip: named.gzip } : {}) };
}

/** `a gzip-compressed tar`, `a plain newc cpio initramfs`, ... */
export function describeTarget(t: ExportTarget): string {
  switch (t.format) {
    case 'dir':
      return 'an image directory';
    case 'tar':
      return t.gzip ? 'a gzip-compressed tar' : 'a tar';
    case 'initramfs':
      return t.gzip === false ? 'a plain newc cpio initramfs' : 'a gzip-compressed newc cpio initramfs';
    case 'ext4':
      return 'an ext4 disk image';
  }
}

/** One line for humans: what was written, where, and the numbers that matter. */
export function describeExport(result: ExportResult, target: ExportTarget, layers: number): string {
  switch (result.format) {
    case 'dir':
      return `an image directory (config.json + ${layers} ${layers === 1 ? 'layer' : 'layers'}, .idx/.contents) at ${result.path}`;
    case 'tar':
      return `${describeTarget(target)} of the flattened root (${plural(result.entries, 'entry', 'entries')}) to ${result.path}`;
    case 'initramfs':
      return `${describeTarget(target)} (${plural(result.entries, 'entry', 'entries')}) to ${result.path}`;
    case 'ext4':
      return `an ext4 disk image (${humanBytes(result.sizeBytes)}, ${humanBytes(result.usedBytes)} used) to ${result.path}`;
  }
}
