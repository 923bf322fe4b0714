/**
 * Exit codes of the `vmimg` command (README "Exit codes" shows the same table).
 * Scripts match on these, so they never change meaning; new failures map to an existing class.
 */
import { ErrorCode, isVmimgError, type ErrorCodeValue } from '../errors.js';

export const ExitCode = {
  /** Success. */
  OK: 0,
  /** Any other failure (network, registry, broken archive or image, ...). */
  ERROR: 1,
  /** Bad usage: unknown command or option, invalid reference, platform or argument. */
  USAGE: 2,
  /** Image, tag, blob, cached name or path inside the image does not exist. */
  NOT_FOUND: 3,
  /** Credentials missing or refused by the registry. */
  AUTH: 4,
  /** The image offers no matching platform. */
  PLATFORM_MISMATCH: 5,
  /** Content failed verification: digest mismatch, oversized body, corrupt layer index. */
  INTEGRITY: 6,
  /** Interrupted (Ctrl-C / SIGINT); the cache is left consistent. */
  INTERRUPTED: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

const BY_CODE: Partial<Record<ErrorCodeValue, ExitCodeValue>> = {
  [ErrorCode.INVALID_REFERENCE]: ExitCode.USAGE,
  [ErrorCode.INVALID_PLATFORM]: ExitCode.USAGE,
  [ErrorCode.INVALID_ARGUMENT]: ExitCode.USAGE,
  [ErrorCode.NOT_FOUND]: ExitCode.NOT_FOUND,
  [ErrorCode.UNAUTHORIZED]: ExitCode.AUTH,
  [ErrorCode.PLATFORM_MISMATCH]: ExitCode.PLATFORM_MISMATCH,
  [ErrorCode.DIGEST_MISMATCH]: ExitCode.INTEGRITY,
  [ErrorCode.TOO_LARGE]: ExitCode.INTEGRITY,
  [ErrorCode.INVALID_INDEX]: ExitCode.INTEGRITY,
  [ErrorCode.ABORTED]: ExitCode.INTERRUPTED,
};

/** Thrown for command-line misuse that yargs itself does not catch. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The exit code for an error that ended a command. */
export function exitCodeFor(err: unknown): ExitCodeValue {
  if (err instanceof UsageError) return ExitCode.USAGE;
  if (isVmimgError(err)) return BY_CODE[err.code] ?? ExitCode.ERROR;
  // VFS errors (paths inside an image) carry Node's errno codes.
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return ExitCode.NOT_FOUND;
  if ((err as Error | null)?.name === 'AbortError') return ExitCode.INTERRUPTED;
  return ExitCode.ERROR;
}
