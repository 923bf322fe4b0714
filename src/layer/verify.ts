/**
 * Re-checks a flattened layer: every regular file's bytes in `.contents` against the sha256 its
 * `.idx` recorded when the layer was flattened from a verified blob. What `validate` and a pull or
 * load of an already cached layer run; a damaged `.contents` is ERR_DIGEST_MISMATCH naming the file.
 */
import { createHash } from 'node:crypto';
import { open, utimes } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { EntryType } from './entry.js';
import { scanIndexFile, type ScannedIndex } from './index-format.js';
import { decodeText, ENTRY_FIXED_SIZE, pathStart, R_SHA256, u64 } from './index-records.js';
import type { LayerFiles } from './paths.js';

export interface LayerCheck {
  /** Regular files checked. */
  files: number;
  /** Content bytes read and hashed. */
  bytes: number;
}

const CHUNK = 1 << 20;

/** ERR_DIGEST_MISMATCH (exit 6) for the content of `name` (an image path or a layer entry). */
export function contentMismatch(name: string, expected: string, actual: string): VmimgError {
  return new VmimgError(ErrorCode.DIGEST_MISMATCH, `${name}: content does not match the sha256 in its layer index (expected ${expected}, got ${actual}): the layer's .contents is damaged`, {
    hint: '`vmimg validate IMAGE` checks every file; pull or load the image again to repair the cache',
    details: { path: name, expected: `sha256:${expected}`, actual: `sha256:${actual}` },
  });
}


interface RegularFile {
  offset: number;
  size: number;
  sha256: string;
  /** Decoded only for a message. */
  path: () => string;
}

/** The regular files of a checked index, in `.contents` order, read from the records (no entry objects). */
function regularFiles({ buf, starts, version, header }: ScannedIndex): RegularFile[] {
  const out: RegularFile[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const at = starts[i]!;
    if (buf[at] !== EntryType.File || !(buf[at + 1]! & R_SHA256)) continue;
    const shaAt = at + ENTRY_FIXED_SIZE[version];
    const p = pathStart(buf, at, version);
    out.push({ offset: u64(buf, at + 48), size: u64(buf, at + 40), sha256: buf.toString('hex', shaAt, shaAt + 32), path: () => decodeText(buf, p, p + buf.readUInt32LE(at + 36)) });
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/** Reads the layer's files in `.contents` order, 1 MiB at a time; throws on the first mismatch. */
export async function verifyLayer(files: LayerFiles, options: { signal?: AbortSignal } = {}): Promise<LayerCheck> {
  const regular = regularFiles(await scanIndexFile(files.indexPath));
  const fh = await open(files.contentsPath, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  let bytes = 0;
  try {
    for (const e of regular) {
      options.signal?.throwIfAborted();
      const hash = createHash('sha256');
      for (let done = 0; done < e.size; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, e.size - done), e.offset + done);
        if (bytesRead === 0) {
          throw new VmimgError(ErrorCode.INVALID_INDEX, `${files.contentsPath} is shorter than its index says (/${e.path()})`, {
            hint: 'pull or load the image again to repair the cache',
          });
        }
        hash.update(buf.subarray(0, bytesRead));
        done += bytesRead;
      }
      bytes += e.size;
      const actual = hash.digest('hex');
      if (actual !== e.sha256) throw contentMismatch(`/${e.path()} (layer ${files.indexPath.replace(/\.idx$/, '')})`, e.sha256, actual);
    }
  } catch (err) {
    // The file's mtime is in its stamp: touching it makes the next pull or load check the layer in full
    // and convert it again (src/layer/verified-stamp.ts), whichever hard link this check went through.
    if (err instanceof VmimgError) await utimes(files.contentsPath, new Date(), new Date()).catch(() => undefined);
    throw err;
  } finally {
    await fh.close();
  }
  return { files: regular.length, bytes };
}
