/**
 * Temporary files a running operation will rename into place or remove. Exports register theirs here
 * so that a process forced to exit at once (a second Ctrl-C, an uncaught error) can still remove them
 * synchronously (`removeTempFilesSync`, called by the CLI on exit) instead of leaving `.NAME.tmp-*`.
 */
import { rmSync } from 'node:fs';

const live = new Set<string>();

/** Registers `path` as a temporary file of this process; returns the function that forgets it. */
export function trackTempFile(path: string): () => void {
  live.add(path);
  return () => {
    live.delete(path);
  };
}

/** Removes every registered temporary file, ignoring errors (the process is about to exit). */
export function removeTempFilesSync(): void {
  for (const path of live) {
    try {
      rmSync(path, { force: true, recursive: true }); // a directory too (a new OCI layout's temp sibling)
    } catch {
      // exiting anyway: a file that cannot be removed now is prune's or the user's
    }
  }
  live.clear();
}
