/** Durable-write helpers shared by the store, the flattener and image directories. */
import { open } from 'node:fs/promises';

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
