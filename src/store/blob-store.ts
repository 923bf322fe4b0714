/**
 * A content-addressed blob store: `<root>/blobs/<alg>/<hex>`. Content is written to a temp file,
 * verified, fsynced and renamed into place, so a blob's presence under its final name means it is
 * complete and correct. Writing a blob that already exists is a success.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestAlgorithm, digestHex, digestOf, isValidDigest, validateDigest, VerifyingStream } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { download, type FetchOptions, type FetchResult, type RangeOpener } from './fetch.js';
import { aborted, discard, fileSize, isAbortError, raceAbort, sleep, syncDir, throwIfAborted } from './fs-util.js';
import { tryLock } from './lock.js';

export interface BlobDescriptor {
  digest: string;
  size?: number;
}

export interface PutResult {
  digest: string;
  size: number;
  path: string;
  /** True when the blob was already in the store (the source was not read). */
  existed: boolean;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/** One fetch per blob per process: concurrent fetchInto calls share it. */
const inFlight = new Map<string, Promise<FetchResult>>();

export class BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Final path of a blob (validates the digest first: it becomes a file name). */
  path(digest: string): string {
    return join(this.root, 'blobs', digestAlgorithm(digest), digestHex(digest));
  }

  /** True when the blob is present (and has `size` bytes, when given). Only a stat: no hashing. */
  async has(digest: string, size?: number): Promise<boolean> {
    const actual = await fileSize(this.path(digest));
    return actual !== undefined && (size === undefined || actual === size);
  }

  /** Opens a blob for reading, whole or `length` bytes from `offset`; ERR_NOT_FOUND when absent. */
  async open(digest: string, range: { offset?: number; length?: number } = {}): Promise<Readable> {
    try {
      const fh = await fs.open(this.path(digest), 'r');
      const start = range.offset ?? 0;
      if (range.length === 0) {
        await fh.close();
        return Readable.from([]);
      }
      const end = range.length !== undefined ? start + range.length - 1 : undefined;
      // 1 MiB reads: a tenth of the syscalls and chunk handling of the 64 KiB default on whole-blob reads (push, serve).
      return fh.createReadStream({ start, highWaterMark: 1 << 20, ...(end !== undefined ? { end } : {}) });
    } catch (err) {
      throw this.mapMissing(err, digest);
    }
  }

  /** Reads a whole (small) blob and checks its digest; ERR_TOO_LARGE above `maxBytes`. */
  async readBytes(digest: string, maxBytes?: number): Promise<Buffer> {
    const path = this.path(digest);
    let bytes: Buffer;
    try {
      const size = (await fs.stat(path)).size;
      if (maxBytes !== undefined && size > maxBytes) {
        throw new VmimgError(ErrorCode.TOO_LARGE, `blob ${short(digest)} is ${size} bytes; the limit is ${maxBytes}`);
      }
      bytes = await fs.readFile(path);
    } catch (err) {
      throw this.mapMissing(err, digest);
    }
    const actual = digestOf(bytes, digestAlgorithm(digest));
    if (actual !== digest) {
      throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `stored blob ${short(digest)} is corrupt (its content hashes to ${actual})`, {
        hint: `delete ${path} and pull again`,
        details: { expected: digest, actual },
      });
    }
    return bytes;
  }

  /**
   * Streams `source` into the store, verifying size and digest on the way. On any failure the temp
   * file is removed and nothing is left. If the blob is already present the source is not read
   * (a Readable source is destroyed) and `existed` is true.
   */
  async put(
    source: Readable | AsyncIterable<Uint8Array>,
    desc: BlobDescriptor,
    opts: { signal?: AbortSignal } = {},
  ): Promise<PutResult> {
    const digest = validateDigest(desc.digest);
    const finalPath = this.path(digest);
    if (await this.has(digest, desc.size)) {
      discard(source);
      return { digest, size: (await fileSize(finalPath))!, path: finalPath, existed: true };
    }
    const tmpDir = join(this.root, 'tmp');
    await fs.mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, `${digestHex(digest)}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const verifier = new VerifyingStream({
      digest,
      ...(desc.size !== undefined ? { size: desc.size } : {}),
      what: `blob ${short(digest)}`,
    });
    try {
      // Open before streaming: a stream that opens lazily could create the file after a failure
      // already removed it, leaving a stray temp file behind.
      const out = (await fs.open(tmp, 'wx')).createWriteStream(); // closes the handle when done or destroyed
      await pipeline(source, verifier, out, ...(opts.signal ? [{ signal: opts.signal }] : []));
      const fh = await fs.open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.mkdir(join(this.root, 'blobs', digestAlgorithm(digest)), { recursive: true });
      await fs.rename(tmp, finalPath);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      if (isAbortError(err)) throw aborted(`storing blob ${short(digest)}`, err);
      throw err;
    }
    await syncDir(join(this.root, 'blobs', digestAlgorithm(digest)));
    return { digest, size: verifier.bytes, path: finalPath, existed: false };
  }

  putBytes(bytes: Uint8Array, desc: BlobDescriptor): Promise<PutResult> {
    return this.put(Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), desc);
  }

  /** Removes a blob; false when it was not there. */
  async delete(digest: string): Promise<boolean> {
    try {
      await fs.unlink(this.path(digest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every complete blob in the store (temp and partial files are not listed). */
  async *walk(): AsyncGenerator<BlobInfo> {
    for (const alg of ['sha256', 'sha512']) {
      const dir = join(this.root, 'blobs', alg);
      let names: string[];
      try {
        names = await fs.readdir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const name of names.sort()) {
        const digest = `${alg}:${name}`;
        if (!isValidDigest(digest)) continue;
        const size = await fileSize(join(dir, name));
        if (size !== undefined) yield { digest, size };
      }
    }
  }

  /**
   * Fetches a blob through `open(offset)` with resume, retries and verification (see fetch.ts).
   * Concurrent calls for one digest share one fetch in this process; across processes a lock file
   * next to the partial lets one download while the others wait for the blob to appear.
   */
  async fetchInto(desc: BlobDescriptor, open: RangeOpener, opts: FetchOptions = {}): Promise<FetchResult> {
    const digest = validateDigest(desc.digest);
    const key = `${this.root}\0${digest}`;
    for (;;) {
      throwIfAborted(opts.signal, `fetching blob ${short(digest)}`);
      let shared = inFlight.get(key);
      const mine = shared === undefined;
      if (shared === undefined) {
        shared = this.fetchLocked({ ...desc, digest }, open, opts).finally(() => inFlight.delete(key));
        inFlight.set(key, shared);
      }
      try {
        const result = await (mine ? shared : raceAbort(shared, opts.signal, `fetching blob ${short(digest)}`));
        return mine ? result : { ...result, fetched: false, resumedFrom: 0 };
      } catch (err) {
        // Another caller's fetch was aborted, not ours: try again on our own.
        if (!mine && isAbortError(err) && !opts.signal?.aborted) continue;
        throw err;
      }
    }
  }

  private async fetchLocked(desc: BlobDescriptor & { digest: string }, open: RangeOpener, opts: FetchOptions): Promise<FetchResult> {
    const { digest } = desc;
    const what = `blob ${short(digest)}`;
    const partialDir = join(this.root, 'partial');
    const partialPath = join(partialDir, digestHex(digest));
    const finalPath = this.path(digest);
    await fs.mkdir(partialDir, { recursive: true });
    let delay = 20;
    for (;;) {
      const present = await fileSize(finalPath);
      if (present !== undefined && (desc.size === undefined || present === desc.size)) {
        return { digest, size: present, path: finalPath, fetched: false, resumedFrom: 0 };
      }
      const lock = await tryLock(`${partialPath}.lock`, opts.staleLockMs ?? 60_000);
      if (lock) {
        try {
          if (await this.has(digest, desc.size)) continue; // brought in while we waited for the lock
          const target = { digest, partialPath, finalPath, what, ...(desc.size !== undefined ? { size: desc.size } : {}) };
          return await download(target, open, opts);
        } finally {
          await lock.release();
        }
      }
      const own = opts.whenLocked?.(partialPath);
      if (own !== undefined) {
        try {
          return await download({ digest, partialPath: own, finalPath, what, ...(desc.size !== undefined ? { size: desc.size } : {}) }, open, opts);
        } catch (err) {
          await fs.rm(own, { force: true });
          throw err;
        }
      }
      // Someone else is downloading: show their progress and wait for the blob (or the lock) to go.
      const partial = await fileSize(partialPath);
      if (partial !== undefined) opts.onProgress?.(partial);
      await sleep(delay, opts.signal, `waiting for ${what}`);
      delay = Math.min(500, delay * 2);
    }
  }

  private mapMissing(err: unknown, digest: string): unknown {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new VmimgError(ErrorCode.NOT_FOUND, `blob ${short(digest)} is not in the store`, { cause: err });
    }
    return err;
  }
}

function short(digest: string): string {
  return digest.slice(0, digest.indexOf(':') + 13);
}

