/** Content digests (`sha256:<hex>`): validation before a digest touches a file name, hashing, verification. */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';

const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };

export type DigestAlgorithm = 'sha256' | 'sha512';

/** Returns the digest unchanged when it is `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`; throws ERR_INVALID_DIGEST otherwise. */
export function validateDigest(digest: string): string {
  if (typeof digest !== 'string') throw invalid(String(digest), 'not a string');
  const colon = digest.indexOf(':');
  if (colon < 0) throw invalid(digest, 'expected ALGORITHM:HEX');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = HEX_LENGTH[algorithm];
  if (length === undefined) throw invalid(digest, `unsupported algorithm "${algorithm}" (sha256 or sha512)`);
  if (hex.length !== length) throw invalid(digest, `${algorithm} needs ${length} hex digits, got ${hex.length}`);
  if (!/^[0-9a-f]+$/.test(hex)) throw invalid(digest, 'hex part must be lowercase 0-9a-f');
  return digest;
}

export function isValidDigest(digest: string): boolean {
  try {
    validateDigest(digest);
    return true;
  } catch {
    return false;
  }
}

/** The algorithm part of a validated digest. */
export function digestAlgorithm(digest: string): DigestAlgorithm {
  return validateDigest(digest).slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

/** The hex part of a validated digest: safe to use as a file name. */
export function digestHex(digest: string): string {
  return validateDigest(digest).slice(digest.indexOf(':') + 1);
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

/** Throws ERR_DIGEST_MISMATCH when `actual` differs from `expected`. */
export function assertDigest(what: string, expected: string, actual: string): void {
  if (expected !== actual) {
    throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what}: digest mismatch: expected ${expected}, got ${actual}`, {
      details: { expected, actual },
    });
  }
}

export interface VerifyOptions {
  /** Expected digest; checked when the stream ends. */
  digest: string;
  /** Expected size in bytes; more bytes abort at once, fewer abort at the end. */
  size?: number;
  /** Names the content in error messages (e.g. `blob sha256:ab12…`). */
  what?: string;
  /** Hash state that already covers bytes seen before this stream (resume). */
  hasher?: Hash;
  /** Bytes already covered by `hasher`. */
  offset?: number;
}

/**
 * A pass-through stream that hashes and counts what flows through and fails the stream
 * (ERR_TOO_LARGE / ERR_DIGEST_MISMATCH) when the content is not what the descriptor says.
 * Consumers must drain it to the end for the check to fire.
 */
export class VerifyingStream extends Transform {
  readonly expected: string;
  readonly expectedSize: number | undefined;
  private readonly hasher: Hash;
  private readonly what: string;
  private count: number;

  constructor(options: VerifyOptions) {
    super();
    this.expected = validateDigest(options.digest);
    this.expectedSize = options.size;
    this.what = options.what ?? options.digest;
    this.hasher = options.hasher ?? createHash(digestAlgorithm(options.digest));
    this.count = options.offset ?? 0;
  }

  get bytes(): number {
    return this.count;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    if (this.expectedSize !== undefined && this.count > this.expectedSize) {
      callback(
        new VmimgError(ErrorCode.TOO_LARGE, `${this.what}: more than the expected ${this.expectedSize} bytes`, {
          details: { expectedSize: this.expectedSize },
        }),
      );
      return;
    }
    this.hasher.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expectedSize !== undefined && this.count !== this.expectedSize) {
      callback(
        new VmimgError(ErrorCode.DIGEST_MISMATCH, `${this.what}: expected ${this.expectedSize} bytes, got ${this.count}`, {
          details: { expectedSize: this.expectedSize, actualSize: this.count },
        }),
      );
      return;
    }
    const actual = `${digestAlgorithm(this.expected)}:${this.hasher.digest('hex')}`;
    try {
      assertDigest(this.what, this.expected, actual);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }
}

function invalid(digest: string, why: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_DIGEST, `invalid digest "${truncate(digest)}": ${why}`);
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
