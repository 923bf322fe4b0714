/**
 * Exit codes of the `vmimg` command (README "Exit codes" shows the same table).
 * Scripts match on these, so they never change meaning; new failures map to an existing class.
 */
import { ErrorCode, VmimgError, type ErrorCodeValue, type VmimgErrorOptions } from '../errors.js';

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
  /** A bug in vmimg (ERR_INTERNAL): an error nobody anticipated; EX_SOFTWARE of sysexits.h. */
  INTERNAL: 70,
  /** Interrupted by Ctrl-C (SIGINT); the cache is left consistent. SIGTERM and SIGHUP give 143 and 129 (signals.ts). */
  INTERRUPTED: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

const BY_CODE: Partial<Record<ErrorCodeValue, ExitCodeValue>> = {
  [ErrorCode.INVALID_REFERENCE]: ExitCode.USAGE,
  [ErrorCode.INVALID_PLATFORM]: ExitCode.USAGE,
  [ErrorCode.INVALID_ARGUMENT]: ExitCode.USAGE,
  [ErrorCode.AMBIGUOUS_IMAGE]: ExitCode.USAGE,
  [ErrorCode.NOT_FOUND]: ExitCode.NOT_FOUND,
  [ErrorCode.UNAUTHORIZED]: ExitCode.AUTH,
  [ErrorCode.PLATFORM_MISMATCH]: ExitCode.PLATFORM_MISMATCH,
  [ErrorCode.DIGEST_MISMATCH]: ExitCode.INTEGRITY,
  [ErrorCode.TOO_LARGE]: ExitCode.INTEGRITY,
  [ErrorCode.INVALID_INDEX]: ExitCode.INTEGRITY,
  [ErrorCode.ABORTED]: ExitCode.INTERRUPTED,
  [ErrorCode.INTERNAL]: ExitCode.INTERNAL,
};

/**
 * Command-line misuse that yargs itself does not catch: ERR_INVALID_ARGUMENT, exit 2. The CLI adds
 * the hint `vmimg CMD --help` when none is given.
 */
export class UsageError extends VmimgError {
  constructor(message: string, options: VmimgErrorOptions = {}) {
    super(ErrorCode.INVALID_ARGUMENT, message, options);
    this.name = 'UsageError';
  }
}

/** The exit code for an `ERR_*` code (1 for codes without a class of their own). */
export function exitCodeForCode(code: string): ExitCodeValue {
  return BY_CODE[code as ErrorCodeValue] ?? ExitCode.ERROR;
}
