/**
 * Checks small files' bytes against their index sha256 in the hash pool's workers (src/util/hash-pool.ts):
 * one stream per export, a part per file. The entry is written while its digest is computed; a mismatch
 * fails the export at the next entry or at the end, before the archive is finished (as a big file's
 * streamed check fails after its bytes went out), with ERR_DIGEST_MISMATCH naming the file.
 */
import { sharedHashPool, type HashStream } from '../util/hash-pool.js';
import { contentMismatch, type ContentVerifier } from '../vfs/verify.js';

export class PoolVerifier {
  private stream: HashStream | undefined;
  private readonly pending = new Set<Promise<void>>();
  private failure: Error | undefined;

  /** Queues `bytes` (a whole file) against `v`'s recorded digest; throws a mismatch found earlier. */
  async check(v: ContentVerifier, bytes: Buffer, name: string): Promise<void> {
    this.throwIfFailed();
    const expected = v.expectedSha256;
    if (expected === undefined || bytes.length === 0) return;
    const stream = (this.stream ??= sharedHashPool().stream({ ranges: true }));
    const start = stream.length;
    await stream.push(bytes);
    const part = stream.part();
    part.range(start, stream.length);
    stream.release(stream.length); // queued after the range: the worker reads the file first
    const done: Promise<void> = part.digest().then(
      (actual) => {
        if (actual !== expected) this.failure ??= contentMismatch(name, expected, actual);
      },
      (err: unknown) => void (this.failure ??= err as Error),
    ).finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Every queued check done: throws the first mismatch. */
  async finish(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    this.stream?.destroy();
    this.throwIfFailed();
  }

  /** Stops the checks (an export that failed otherwise). */
  destroy(): void {
    this.stream?.destroy();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}
