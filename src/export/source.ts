/** What exporters accept: an image (opened here, closed after) or an already open ContainerFS. */
import type { Image } from '../image/index.js';
import { ContainerFS } from '../vfs/index.js';

export type ExportSource = Image | ContainerFS;

export function isImage(x: ExportSource): x is Image {
  return !(x instanceof ContainerFS) && typeof (x as Image).dir === 'string' && (x as Image).config !== undefined;
}

/** Runs `fn` with a ContainerFS for `source`, closing it afterwards only when we opened it. */
export async function withFs<T>(source: ExportSource, fn: (fs: ContainerFS) => Promise<T>): Promise<T> {
  if (!isImage(source)) return fn(source);
  const fs = await ContainerFS.open(source); // its layers carry their content readers (lazy ones) along
  try {
    return await fn(fs);
  } finally {
    await fs.close();
  }
}
