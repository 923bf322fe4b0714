/**
 * How an error that ended a command is shown. Every failure gets an `ERR_*` code:
 *   - VmimgErrors keep theirs; ContainerFS errors map ENOENT → ERR_NOT_FOUND, the rest (ELOOP,
 *     EISDIR, ENOTDIR, ...) → ERR_INVALID_ARGUMENT (the path argument can't be used as asked);
 *   - Node's errno errors that describe the user's machine, not a bug (disk full, permission denied,
 *     read-only, too many open files, ...) → ERR_IO (exit 1) with a hint; a missing file → ERR_NOT_FOUND;
 *   - anything else (EEXIST nobody expected, RangeError, TypeError, ...) is a bug: ERR_INTERNAL, exit 70,
 *     with "please report" and the VMIMG_DEBUG=1 advice.
 * Human form: `vmimg: ERR_X: message` then optionally `hint: …`. JSON form (--json): one object on
 * stderr, `{"error":{"code","message","hint","exit"}}` (hint null when there is none; `errno` added
 * when the cause was an errno error).
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { isVfsError } from '../vfs/errors.js';
import { escapeTerminal } from './escape.js';
import { ExitCode, UsageError, exitCodeForCode } from './exit-codes.js';
import { exitCodeForSignal } from './signals.js';

export interface ErrorReport {
  code: string;
  message: string;
  hint: string | null;
  exit: number;
  /** Node's errno code (ENOENT, ENOSPC, ELOOP, ...) when the error carried one. */
  errno?: string;
}

/** errno codes that are the machine's state rather than a vmimg bug, with what to do about each. */
const ENVIRONMENT: Record<string, string> = {
  ENOSPC: 'the disk is full: free space where vmimg writes (the cache: --cache-dir, or the destination)',
  EDQUOT: 'the disk quota is exhausted: free space where vmimg writes (the cache: --cache-dir, or the destination)',
  EACCES: 'permission denied: check the permissions of the path, or use another location (--cache-dir)',
  EPERM: 'operation not permitted: check the permissions of the path, or use another location (--cache-dir)',
  EROFS: 'the file system is read-only: use a writable location (--cache-dir, or another destination)',
  EMFILE: 'too many open files: raise the limit (ulimit -n) or lower --concurrency',
  ENFILE: 'the system is out of file handles: close other programs or lower --concurrency',
  EIO: 'the disk reported an I/O error',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EISDIR: 'the path is a directory where a file is needed',
  ENAMETOOLONG: 'the path is too long',
  ENOMEM: 'the machine is out of memory',
};

/** `vmimg CMD --help` (or `vmimg --help`): where a usage error sends the user. */
export function helpHint(command?: string): string {
  return command ? `vmimg ${command} --help shows its arguments and options` : 'vmimg --help lists the commands';
}

/** What the user typed that a report refers to: the command, and --arch rather than --platform. */
export interface ReportContext {
  command?: string;
  /** The user named the platform with --arch: hints should say --arch too. */
  arch?: boolean;
}

/** The code, message, hint and exit status for an error that ended `command`. */
export function describeError(err: unknown, context: ReportContext = {}): ErrorReport {
  const { command } = context;
  if (isVfsError(err)) {
    const code = err.code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.INVALID_ARGUMENT;
    return { code, message: vfsMessage(err), hint: null, exit: exitCodeForCode(code), errno: err.code };
  }
  if (err instanceof VmimgError) {
    const archHint =
      context.arch && err.code === ErrorCode.PLATFORM_MISMATCH ? (archMismatchHint(err.details) ?? err.hint?.replace(/--platform\b/g, '--arch')) : undefined;
    const hint = archHint ?? err.hint ?? (err instanceof UsageError ? helpHint(command) : null);
    const signal = err.code === ErrorCode.ABORTED ? err.details?.signal : undefined;
    const exit = typeof signal === 'string' ? exitCodeForSignal(signal as NodeJS.Signals) : exitCodeForCode(err.code);
    return { code: err.code, message: err.message, hint, exit };
  }
  const e = err instanceof Error ? err : undefined;
  if (e?.name === 'AbortError') return { code: ErrorCode.ABORTED, message: 'interrupted', hint: null, exit: ExitCode.INTERRUPTED };
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e && typeof errno === 'string') {
    if (errno === 'ENOENT') return { code: ErrorCode.NOT_FOUND, message: e.message, hint: null, exit: ExitCode.NOT_FOUND, errno };
    const hint = ENVIRONMENT[errno];
    if (hint !== undefined) return { code: ErrorCode.IO, message: e.message, hint, exit: ExitCode.ERROR, errno };
  }
  const text = e ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(err);
  return {
    code: ErrorCode.INTERNAL,
    message: `unexpected error: ${text}`,
    hint: 'this is a bug in vmimg, please report it with the output of the same command run with VMIMG_DEBUG=1',
    exit: ExitCode.INTERNAL,
    ...(typeof errno === 'string' ? { errno } : {}),
  };
}

/** A platform mismatch hint in --arch terms (`linux/arm64/v8` → `arm64`) for someone who typed --arch. */
function archMismatchHint(details: Record<string, unknown> | undefined): string | undefined {
  const available = Array.isArray(details?.available) ? details.available.filter((p): p is string => typeof p === 'string') : [];
  const archs = [...new Set(available.map((p) => p.split('/').slice(1).join('/').replace(/^arm64\/v8$/, 'arm64')).filter((a) => a !== ''))];
  if (archs.length === 0) return undefined;
  return `use ${archs.map((a) => `--arch ${a}`).join(' or ')}${typeof details?.wanted === 'string' ? `, or pick an image built for ${details.wanted}` : ''}`;
}

/** `ENOENT: no such file or directory, open '/x'` → `/x: no such file or directory in the image (ENOENT)`. */
function vfsMessage(err: { code: string; syscall: string; path?: string; message: string }): string {
  const where = `, ${err.syscall}${err.path === undefined ? '' : ` '${err.path}'`}`;
  const prefix = `${err.code}: `;
  const reason = err.message.startsWith(prefix) && err.message.endsWith(where) ? err.message.slice(prefix.length, -where.length) : err.message;
  return `${err.path === undefined ? '' : `${err.path}: `}${reason} in the image (${err.code})`;
}

/** Writes the report of `err` to stderr: one coded line (+ hint), or one JSON object with --json. */
export function reportError(err: unknown, options: ReportContext & { json: boolean }): ErrorReport {
  const report = describeError(err, options);
  if (options.json) {
    process.stderr.write(`${JSON.stringify({ error: report })}\n`);
  } else {
    // messages quote names and registry text: no control character reaches the terminal
    process.stderr.write(`vmimg: ${report.code}: ${escapeTerminal(report.message)}\n`);
    if (report.hint !== null) process.stderr.write(`hint: ${escapeTerminal(report.hint)}\n`);
  }
  if (process.env.VMIMG_DEBUG === '1') writeStack(err);
  return report;
}

function writeStack(err: unknown): void {
  let e: unknown = err;
  while (e instanceof Error) {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    e = e.cause;
    if (e !== undefined) process.stderr.write('caused by: ');
  }
}
