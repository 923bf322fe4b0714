/** Durable-write helpers shared by the store, the flattener and image directories. */
import { open, type FileHandle } from 'node:fs/promises';

/** Writes a file and fsyncs it, so a crash cannot leave it half written under its final name. */
export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const handle = await open(path, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory so a rename into it survives a crash (best effort: not every filesystem allows it). */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    await handle.sync().finally(() => handle.close());
  } catch {
    // a durability hint only: the files themselves are already fsynced
  }
}

/**
 * Writes `bufs` (`bytes` in all) at `position` with as few writev calls as the kernel allows: a short
 * write is continued from where it stopped. Keep `bufs` under IOV_MAX (1024) buffers.
 */
export async function writevAll(fh: FileHandle, bufs: Buffer[], bytes: number, position: number): Promise<void> {
  for (let done = 0; done < bytes; ) {
    const { bytesWritten } = await fh.writev(done === 0 ? bufs : after(bufs, done), position + done);
    done += bytesWritten;
  }
}

/** The part of `bufs` after the first `skip` bytes. */
function after(bufs: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}
