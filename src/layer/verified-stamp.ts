/**
 * The stamp of a verified layer (docs/DECISIONS.md "A cached layer is checked in full once, then by its
 * stamp"): `<diffHex>.verified` next to the layer's `.idx`/`.contents`, recording the identity of both
 * files (inode, size, mtime in ns) when every byte was last known good — just flattened from a verified
 * blob, or checked in full by verifyLayer. While both files still match it, a pull or load trusts the
 * layer without re-hashing it; replacing, truncating or writing to either file changes the identity, and
 * the next pull or load checks the layer in full again. Bit rot and edits that put the old mtime back are
 * not seen by a stamp: exports and `cat` hash what they read, and `vmimg validate` checks every byte (a
 * failing check drops the stamp, so the next pull repairs the layer).
 *
 * A stamp is a cache, never a proof: a missing, unreadable or foreign one only means "check in full".
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LayerFiles } from './paths.js';

/** Where a layer's stamp lives: its `.contents` path with `.verified` instead. */
export function stampPath(files: LayerFiles): string {
  return files.contentsPath.replace(/\.contents$/, '.verified');
}

async function identity(files: LayerFiles): Promise<string> {
  const parts: string[] = [];
  for (const path of [files.indexPath, files.contentsPath]) {
    const st = await stat(path, { bigint: true });
    parts.push(`${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`);
  }
  return `v1 ${parts.join(' ')}\n`;
}

/** True when the layer's stamp exists and both files are still the ones it recorded. */
export async function stampMatches(files: LayerFiles): Promise<boolean> {
  try {
    const [recorded, now] = await Promise.all([readFile(stampPath(files), 'utf8'), identity(files)]);
    return recorded === now;
  } catch {
    return false; // no stamp, or a file gone: not known good
  }
}

/** Records that the layer's files are good as they are now (call right after checking every byte). */
export async function writeStamp(files: LayerFiles): Promise<void> {
  const path = stampPath(files);
  const tmp = join(dirname(path), `.tmp-${process.pid}-${randomBytes(8).toString('hex')}.verified`); // prune reclaims a dead writer's
  try {
    await writeFile(tmp, await identity(files));
    await rename(tmp, path);
  } catch {
    await rm(tmp, { force: true }); // only a cache: the next pull checks in full
  }
}

/** Forgets that the layer was good (a check failed, or the layer is being removed). */
export async function dropStamp(files: LayerFiles): Promise<void> {
  await rm(stampPath(files), { force: true });
}
