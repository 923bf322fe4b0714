/**
 * Errors as the distribution spec shapes them: `{"errors":[{"code","message","detail"}]}` with the
 * spec's codes (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_INVALID, ...; distribution's errcode adds UNKNOWN,
 * UNAVAILABLE, TOOMANYREQUESTS). `detail.vmimg` carries the vmimg error code behind it, if any.
 */
import { ErrorCode, isVmimgError } from '../errors.js';
import { cannotStore, storageErrno } from './storage.js';

/** An answer the server gives on purpose: HTTP status, spec code, message. */
export class ServeError extends Error {
  constructor(
    readonly status: number,
    readonly apiCode: string,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ServeError';
  }
}

/** Any error → the ServeError to answer with; `notFound` is the spec code for a 404 on this endpoint. */
export function toServeError(err: unknown, notFound = 'NAME_UNKNOWN'): ServeError {
  if (err instanceof ServeError) return err;
  const errno = storageErrno(err);
  if (errno !== undefined) {
    // the cache's disk, not the request or the upstream: 507 Insufficient Storage (RFC 4918), never retried here
    const message = isVmimgError(err) ? err.message : cannotStore('it', errno).message;
    return new ServeError(507, 'UNAVAILABLE', message, { vmimg: ErrorCode.IO, errno });
  }
  if (!isVmimgError(err)) return new ServeError(500, 'UNKNOWN', 'internal error', { vmimg: ErrorCode.INTERNAL });
  const detail = { vmimg: err.code };
  const message = err.message;
  switch (err.code) {
    case ErrorCode.NOT_FOUND:
      return new ServeError(404, notFound, message, detail);
    case ErrorCode.UNAUTHORIZED:
      return new ServeError(502, 'DENIED', `the upstream refused: ${message}`, detail);
    case ErrorCode.INVALID_DIGEST:
      return new ServeError(400, 'DIGEST_INVALID', message, detail);
    case ErrorCode.TOO_LARGE:
    case ErrorCode.INVALID_MANIFEST:
    case ErrorCode.UNSUPPORTED_SCHEMA1:
      return new ServeError(502, 'MANIFEST_INVALID', `the upstream's answer is refused: ${message}`, detail);
    case ErrorCode.DIGEST_MISMATCH:
      return new ServeError(502, 'DIGEST_INVALID', `the upstream's content does not match its digest: ${message}`, detail);
    case ErrorCode.REGISTRY_UNAVAILABLE:
    case ErrorCode.NETWORK:
      return new ServeError(503, 'UNAVAILABLE', `the upstream is unavailable: ${message}`, detail);
    case ErrorCode.ABORTED:
      return new ServeError(503, 'UNAVAILABLE', 'the server is shutting down', detail);
    default:
      return new ServeError(502, 'UNKNOWN', message, detail);
  }
}

/** The JSON body of an error answer. */
export function errorBody(err: ServeError): string {
  return JSON.stringify({ errors: [{ code: err.apiCode, message: err.message, detail: err.detail }] });
}
