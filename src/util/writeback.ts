/**
 * A big file's writeback started while it is still being written (issue 13). The page cache holds a
 * fresh file's bytes until something syncs them: a pull's blob (95 MB) and `.contents` (212 MB) went to
 * the disk only in the fsyncs that commit them, 130–190 ms at the end of the pull with nothing else left
 * to do. Here an fdatasync runs in the thread pool after every `every` bytes (one at a time, never
 * awaited by the writer), so the committing fsync finds little left to write.
 */
import type { FileHandle } from 'node:fs/promises';

/** Bytes written between two early fdatasyncs (default): a few per file, each a short journal commit. */
export const WRITEBACK_BYTES = 32 << 20;

/** Early fdatasyncs of one file handle; see the module comment. */
export class Writeback {
  private synced = 0;
  private running: Promise<void> | undefined;
  private error: unknown;

  constructor(private readonly fh: FileHandle, private readonly every = WRITEBACK_BYTES) {}

  /** The file's bytes below `end` are written: start an fdatasync when `every` more are and none runs. */
  wrote(end: number): void {
    if (end < this.synced) this.synced = end; // truncated (a download restarted)
    if (this.running !== undefined || end - this.synced < this.every) return;
    this.synced = end;
    this.running = this.fh.datasync().then(
      () => void (this.running = undefined),
      (err: unknown) => {
        this.error ??= err;
        this.running = undefined;
      },
    );
  }

  /**
   * Waits for the fdatasync under way, if any; throws when one failed (EIO, ENOSPC: bytes the file
   * was meant to hold may be lost, as the committing fsync would report). Call before that fsync and
   * before closing the handle.
   */
  async settle(): Promise<void> {
    await this.running;
    if (this.error !== undefined) throw this.error;
  }
}
