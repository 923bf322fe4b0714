/**
 * Node-style filesystem errors for the VFS: `code`, `errno` (negative, as Node reports it),
 * `syscall` and `path`, so code written against `node:fs` can match on them unchanged.
 * They belong to the vmimg error family (`isVmimgError(err)` is true; src/errors.ts) but keep Node's
 * errno codes rather than `ERR_*`: they describe the image's namespace, not a vmimg failure.
 * Use after close() is the one exception: it throws VmimgError ERR_CLOSED (see closedError).
 */
import { ErrorCode, VmimgError, kVmimgError } from '../errors.js';

const kVfsError = Symbol.for('vmimg.error.vfs');

const ERRNO = {
  ENOENT: 2,
  EBADF: 9,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EROFS: 30,
  ENODATA: 61,
  ENOTEMPTY: 39,
  ELOOP: 40,
} as const;

export type VfsErrorCode = keyof typeof ERRNO;

const MESSAGES: Record<VfsErrorCode, string> = {
  ENOENT: 'no such file or directory',
  EBADF: 'bad file descriptor',
  EEXIST: 'file already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  EINVAL: 'invalid argument',
  EROFS: 'read-only file system',
  ENODATA: 'no data available',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many symbolic links encountered',
};

/** A ContainerFS error shaped like Node's fs errors; `instanceof` works across installed copies. */
export class VfsError extends Error {
  readonly [kVmimgError] = true;
  readonly [kVfsError] = true;
  readonly code: VfsErrorCode;
  /** Negative Linux errno, like Node's fs errors; servers reply with `-errno`. */
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;

  constructor(code: VfsErrorCode, syscall: string, path?: string) {
    const where = path === undefined ? '' : ` '${path}'`;
    super(`${code}: ${MESSAGES[code]}, ${syscall}${where}`);
    this.name = 'VfsError';
    this.code = code;
    this.errno = -ERRNO[code];
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }

  static override [Symbol.hasInstance](instance: unknown): boolean {
    if (this !== VfsError) return Function.prototype[Symbol.hasInstance].call(this, instance);
    return typeof instance === 'object' && instance !== null && (instance as Record<symbol, unknown>)[kVfsError] === true;
  }
}

/** Is `err` a ContainerFS error (optionally with errno code `code`), from any installed copy? */
export function isVfsError(err: unknown, code?: VfsErrorCode): err is VfsError {
  return err instanceof VfsError && (code === undefined || err.code === code);
}

export function closedError(what: string): VmimgError {
  return new VmimgError(ErrorCode.CLOSED, `${what}: the ContainerFS was closed`);
}
