/**
 * Every error vmimg raises on purpose is a VmimgError with a stable `code`.
 * Users (and the CLI's exit-code mapping) match on `code`, never on the class or the message.
 * The table below is also in README.md ("Error codes"): keep them in step.
 *
 * One family, two shapes: VmimgError (`ERR_*` codes) and ContainerFS's VfsError (Node's errno codes,
 * `ENOENT`, `ELOOP`, ...; src/vfs/errors.ts). Both carry the brand `Symbol.for('vmimg.error')`, so
 * `isVmimgError` and `instanceof` recognise them even when two copies of vmimg are installed
 * (undici's way: a registry symbol, not class identity).
 */
import type { VfsError } from './vfs/errors.js';

/** The brand every vmimg error carries (a registry symbol: the same in every installed copy). */
export const kVmimgError: unique symbol = Symbol.for('vmimg.error');
const kVmimgCodedError = Symbol.for('vmimg.error.coded');
export const ErrorCode = {
  /** A reference (`name:tag@digest`) does not follow Docker's grammar. */
  INVALID_REFERENCE: 'ERR_INVALID_REFERENCE',
  /** A platform string (`linux/arm64/v8`, `amd64`, ...) cannot be parsed. */
  INVALID_PLATFORM: 'ERR_INVALID_PLATFORM',
  /** A digest is not `sha256:<64 hex>` / `sha512:<128 hex>`. */
  INVALID_DIGEST: 'ERR_INVALID_DIGEST',
  /** Bad command-line or API arguments. */
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  /** The image offers no platform matching the one asked for. */
  PLATFORM_MISMATCH: 'ERR_PLATFORM_MISMATCH',
  /** Repository, tag, manifest or blob does not exist (HTTP 404, missing file). */
  NOT_FOUND: 'ERR_NOT_FOUND',
  /** Credentials missing or refused (HTTP 401/403 after the auth flow). */
  UNAUTHORIZED: 'ERR_UNAUTHORIZED',
  /** Content does not match its digest or size. */
  DIGEST_MISMATCH: 'ERR_DIGEST_MISMATCH',
  /** A body longer than its descriptor or a manifest over the size cap. */
  TOO_LARGE: 'ERR_TOO_LARGE',
  /** Manifest / index / config JSON that is malformed or of an unsupported type. */
  INVALID_MANIFEST: 'ERR_INVALID_MANIFEST',
  /** Docker schema 1 manifests: refused by design. */
  UNSUPPORTED_SCHEMA1: 'ERR_UNSUPPORTED_SCHEMA1',
  /** The registry answered 429 / 5xx past the retry budget. */
  REGISTRY_UNAVAILABLE: 'ERR_REGISTRY_UNAVAILABLE',
  /** Any other unexpected HTTP answer from a registry. */
  REGISTRY_ERROR: 'ERR_REGISTRY_ERROR',
  /** Connection refused/reset, DNS failure, TLS failure, stall timeout. */
  NETWORK: 'ERR_NETWORK',
  /** A layer tar is malformed or unsafe (`..` escapes, bad hardlink, ...). */
  INVALID_LAYER: 'ERR_INVALID_LAYER',
  /** An .idx file is foreign, of another version, truncated or corrupt. */
  INVALID_INDEX: 'ERR_INVALID_INDEX',
  /** A tar file is not an image archive vmimg can read. */
  INVALID_ARCHIVE: 'ERR_INVALID_ARCHIVE',
  /** An image directory or its config.json is missing or broken. */
  INVALID_IMAGE: 'ERR_INVALID_IMAGE',
  /** A source holds several images that fit what was asked (the message lists them; name one). */
  AMBIGUOUS_IMAGE: 'ERR_AMBIGUOUS_IMAGE',
  /** The runtime user named in the image config does not exist in the image. */
  UNKNOWN_USER: 'ERR_UNKNOWN_USER',
  /** Export destination exists and is not empty (use force). */
  DESTINATION_EXISTS: 'ERR_DESTINATION_EXISTS',
  /** The operation was cancelled (AbortSignal, Ctrl-C). */
  ABORTED: 'ERR_ABORTED',
  /** An object was used after close(). */
  CLOSED: 'ERR_CLOSED',
  /** A VM boot ended without the guest command's exit status (the message names the console's cause). */
  BOOT_FAILED: 'ERR_BOOT_FAILED',
  /** The machine refused a file operation: disk full, permission denied, read-only, too many open files. */
  IO: 'ERR_IO',
  /** A bug in vmimg: an error nobody anticipated (the CLI exits 70 and asks for a report). */
  INTERNAL: 'ERR_INTERNAL',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface VmimgErrorOptions {
  cause?: unknown;
  /** One short sentence telling the user what to do about it. */
  hint?: string;
  /** Structured details for programs (never secrets). */
  details?: Record<string, unknown>;
}

/**
 * An error vmimg raised on purpose: `code` (ERR_*, the table above) is the contract, `message` is for
 * people, `hint` one sentence on what to do, `details` structured data for programs (never secrets).
 * `instanceof VmimgError` works across installed copies (brand check, see the file comment).
 */
export class VmimgError extends Error {
  readonly code: ErrorCodeValue;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;
  readonly [kVmimgError] = true;
  readonly [kVmimgCodedError] = true;

  constructor(code: ErrorCodeValue, message: string, options: VmimgErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VmimgError';
    this.code = code;
    if (options.hint !== undefined) this.hint = options.hint;
    if (options.details !== undefined) this.details = options.details;
  }

  /** Brand check for VmimgError itself; subclasses keep ordinary prototype checks. */
  static override [Symbol.hasInstance](instance: unknown): boolean {
    if (this !== VmimgError) return Function.prototype[Symbol.hasInstance].call(this, instance);
    return typeof instance === 'object' && instance !== null && (instance as Record<symbol, unknown>)[kVmimgCodedError] === true;
  }
}

function isVmimgFamilyError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kVmimgError] === true;
}

/**
 * Is `err` a vmimg error? Without `code`: any of the family — a VmimgError (`ERR_*` code) or a
 * ContainerFS VfsError (errno code such as `ENOENT`). With `code`: that code exactly. Works across
 * two installed copies of vmimg (the brand is a `Symbol.for` registry symbol).
 */
export function isVmimgError(err: unknown): err is VmimgError | VfsError;
export function isVmimgError(err: unknown, code: ErrorCodeValue): err is VmimgError;
export function isVmimgError(err: unknown, code?: ErrorCodeValue): boolean {
  return isVmimgFamilyError(err) && (code === undefined || (err as { code?: unknown }).code === code);
}

/** Prefix an error's message with what we were doing (`pulling alpine: ...`), keeping code and hint. */
export function wrapError(err: unknown, doing: string): Error {
  if (err instanceof VmimgError) {
    const wrapped = new VmimgError(err.code, `${doing}: ${err.message}`, {
      cause: err,
      ...(err.hint !== undefined ? { hint: err.hint } : {}),
      ...(err.details !== undefined ? { details: err.details } : {}),
    });
    return wrapped;
  }
  if (err instanceof Error) {
    const wrapped = new Error(`${doing}: ${err.message}`, { cause: err });
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined) (wrapped as NodeJS.ErrnoException).code = code;
    return wrapped;
  }
  return new Error(`${doing}: ${String(err)}`);
}
