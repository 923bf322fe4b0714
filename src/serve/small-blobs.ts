/**
 * Small blobs (configs, empty and tiny layers) kept in memory once verified, so a hit on one costs no
 * file operation. A hit read from the file is a stat, an open, a read and a close, each a trip through
 * the thread pool, and behind a big blob's commit (its fsync holds a pool thread) the 1.3 KB blobs of
 * serve's bench image took 3-7 ms each: with 4 clients asking 6 of them one after another, 35-60 ms at
 * the end of a ~0.6 s cold round. Content-addressed bytes never change, so an entry needs no
 * revalidation; one `vmimg prune` removed from the disk is still the blob its digest names.
 */

/** Largest blob kept (bytes). */
export const SMALL_BLOB_BYTES = 64 << 10;
/** Bytes of all blobs kept; past it the least recently used go. */
export const SMALL_BLOBS_TOTAL = 16 << 20;

/** Verified small blobs by digest, least recently used first (a Map keeps insertion order). */
export class SmallBlobs {
  private readonly blobs = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBlob = SMALL_BLOB_BYTES, private readonly maxTotal = SMALL_BLOBS_TOTAL) {}

  /** The blob's bytes when kept (then it is the most recently used). */
  get(digest: string): Buffer | undefined {
    const b = this.blobs.get(digest);
    if (b === undefined) return undefined;
    this.blobs.delete(digest);
    this.blobs.set(digest, b);
    return b;
  }

  /** Keeps `bytes`, which must be verified against `digest`, when small enough. */
  put(digest: string, bytes: Buffer): void {
    if (bytes.length > this.maxBlob || this.blobs.has(digest)) return;
    this.blobs.set(digest, bytes);
    this.bytes += bytes.length;
    for (const [d, b] of this.blobs) {
      if (this.bytes <= this.maxTotal) break;
      this.blobs.delete(d);
      this.bytes -= b.length;
    }
  }

  /** Blobs kept, and their bytes. */
  get size(): { blobs: number; bytes: number } {
    return { blobs: this.blobs.size, bytes: this.bytes };
  }
}
