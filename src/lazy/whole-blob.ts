/**
 * A lazy layer filled from its whole blob at once: a layer without checkpoints (under 10 MiB), one with
 * sparse files, or a registry that ignored Range. The blob is hashed as it streams, decompressed (gzip,
 * zstd or plain) into every file's place in `.contents`, and only then checked against its digest; the
 * caller sets the spans' bits after that, so a mismatch leaves nothing marked present.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { decompress } from '../layer/decompress.js';
import { LayerBudget, type LayerLimits } from '../layer/limits.js';
import type { BlobCopy } from './blob-copy.js';
import { placeTar, type Placed } from './placed-files.js';

/** Where a whole blob goes: the layer's files in its open `.contents`, and the kept compressed copy if any. */
export interface WholeBlobTarget {
  /** `sha256:` digest the blob must have (ERR_DIGEST_MISMATCH otherwise). */
  digest: string;
  files: readonly Placed[];
  fh: FileHandle;
  copy: BlobCopy | undefined;
  /** Told the byte count of each chunk of the blob as it arrives. */
  counted: (bytes: number) => void;
  /** The layer's limits (as an eager pull's): ERR_TOO_LARGE once the tar passes its expansion limits or a zstd frame's window passes `maxZstdWindow`. */
  limits: LayerLimits;
  /** The blob's size (the expansion ratio's base), when known. */
  blobSize: number | undefined;
}

/** Streams `stream` (the whole blob) into `to`, verifies it, and syncs `.contents` and the copy. */
export async function placeWholeBlob(stream: Readable, to: WholeBlobTarget): Promise<void> {
  const hash = createHash('sha256');
  let copied = 0;
  const counted = new Transform({
    transform: (chunk: Buffer, _enc, cb) => {
      hash.update(chunk);
      to.counted(chunk.length);
      if (to.copy === undefined) return cb(null, chunk);
      copied += chunk.length;
      to.copy.write(copied - chunk.length, chunk, false).then(() => cb(null, chunk), cb);
    },
  });
  const budget = new LayerBudget(to.limits, to.blobSize);
  const tar = decompress(stream.pipe(counted), { maxZstdWindow: to.limits.maxZstdWindow }); // gzip, zstd or plain: layers without checkpoints may be any
  stream.once('error', (err) => counted.destroy(err));
  let at = 0;
  for await (const chunk of tar) {
    budget.check(at + (chunk as Buffer).length);
    await placeTar(to.fh, to.files, chunk as Buffer, at);
    at += (chunk as Buffer).length;
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== to.digest) throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `layer blob: expected ${to.digest}, got ${actual}`);
  await to.fh.datasync();
  await to.copy?.write(0, new Uint8Array(0)); // syncs the copied blob
}
