/**
 * Progress of a long export on the terminal (the Debian initramfs takes seconds): one line redrawn at
 * most ten times a second, `exporting root.cpio.gz: 3412 entries, 120.4 MiB`, erased when the export
 * ends. Nothing off a terminal, with -q or with --json (their output stays as it was).
 */
import type { ExportProgress } from '../export/index.js';
import type { Context } from './context.js';
import { escapeTerminal } from './escape.js';
import { humanBytes } from './format.js';

const REDRAW_MS = 100;

export interface ExportProgressLine {
  /** For the exporter's `onProgress`; absent when nothing is drawn. */
  onProgress?: (progress: ExportProgress) => void;
  /** Erases the line (call on every way out). */
  done(): void;
}

export function exportProgressLine(ctx: Context, dest: string): ExportProgressLine {
  if (ctx.quiet || ctx.json || process.stderr.isTTY !== true) return { done: () => undefined };
  let last = 0;
  let drawn = false;
  const what = escapeTerminal(dest === '-' || dest === '' ? 'to stdout' : dest);
  return {
    onProgress(p) {
      const now = Date.now();
      if (now - last < REDRAW_MS) return;
      last = now;
      drawn = true;
      process.stderr.write(`\r\x1b[2Kexporting ${what}: ${p.entries} entries, ${humanBytes(p.bytes)}`);
    },
    done() {
      if (drawn) process.stderr.write('\r\x1b[2K');
    },
  };
}
