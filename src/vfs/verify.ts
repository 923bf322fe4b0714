/**
 * Checks a file's bytes against the sha256 its layer's index recorded when the layer was flattened
 * from a verified blob: a damaged `.contents` (disk corruption, an edit in the cache) is
 * ERR_DIGEST_MISMATCH naming the file, never bytes handed on as if they were the image's.
 */
import { createHash, type Hash } from 'node:crypto';
import { contentMismatch } from '../layer/verify.js';

export { contentMismatch };

/** Hashes a file's bytes as they pass, in order; `check()` once all have. No-op without an expected digest. */
export class ContentVerifier {
  readonly #hash: Hash | undefined;
  #seen = 0;

  /** `expected`: lowercase hex sha256 (undefined: nothing to check); `size`: the file's length in bytes. */
  constructor(
    private readonly expected: string | undefined,
    private readonly size: number,
    private readonly name: string,
  ) {
    this.#hash = expected === undefined ? undefined : createHash('sha256');
  }

  /** The recorded sha256 (lowercase hex), or undefined when there is nothing to check. */
  get expectedSha256(): string | undefined {
    return this.expected;
  }

  update(chunk: Uint8Array): void {
    this.#hash?.update(chunk);
    this.#seen += chunk.length;
  }

  /** Throws ERR_DIGEST_MISMATCH unless the bytes seen are the whole file with the recorded digest. */
  check(): void {
    if (this.#hash === undefined || this.expected === undefined) return;
    if (this.#seen !== this.size) throw new Error(`verifier of ${this.name}: saw ${this.#seen} of ${this.size} bytes`);
    const actual = this.#hash.digest('hex');
    if (actual !== this.expected) throw contentMismatch(this.name, this.expected, actual);
  }
}

/** What verifyWhole reads through. */
interface VerifiableFS {
  verifier(ino: number, name?: string): ContentVerifier;
  getattr(ino: number): { size: number };
  read(ino: number, offset: number, length: number): Promise<Buffer>;
}

/** Reads a regular file whole, in 1 MiB reads, and checks it against its index sha256. */
export async function verifyWhole(fs: VerifiableFS, ino: number, name?: string): Promise<void> {
  const v = fs.verifier(ino, name);
  const size = fs.getattr(ino).size;
  for (let pos = 0; pos < size; ) {
    const buf = await fs.read(ino, pos, Math.min(1 << 20, size - pos));
    v.update(buf);
    pos += buf.length;
  }
  v.check();
}
