/** Small pure helpers for the client: names in messages, digests, media types, ranges. */
import { ErrorCode, VmimgError } from '../errors.js';
import { validateDigest } from '../digest/index.js';
import type { Reference } from '../reference/types.js';
import { statusError, unauthorizedHint } from './http-errors.js';
import { header, type HttpResponse } from './transport.js';
import type { NoticeListener, RetryPolicy } from '../util/retry.js';

/** What a call is about, for messages and for the endpoint loop. */
export interface Step {
  readonly repo: Pick<Reference, 'registry' | 'repository'>;
  readonly what: string;
  readonly path: string;
  readonly method: 'GET' | 'HEAD';
  readonly headers?: Readonly<Record<string, string>>;
  readonly capability: 'pull' | 'resolve';
  readonly signal?: AbortSignal | undefined;
  /** Retry waits and stalls. */
  readonly onNotice?: NoticeListener | undefined;
  /** One attempt only: the caller retries (blobs: the store's fetch). */
  readonly once?: boolean;
  /** This call's retry policy over the client's (a smaller budget for an optional request). */
  readonly retry?: Partial<RetryPolicy> | undefined;
  /** Read the body by direct-get.ts (large blobs). */
  readonly direct?: boolean;
  /** This call's wait for headers and between body chunks (ms), when not the client's. */
  readonly idleTimeoutMs?: number | undefined;
}

export function unauthorized(step: Step, url: string, status: number, body: string, why: string): VmimgError {
  const base = statusError({ what: step.what, url, status, body, registry: step.repo.registry });
  return new VmimgError(ErrorCode.UNAUTHORIZED, `${why}: ${base.message}`, {
    hint: unauthorizedHint(step.repo.registry),
    ...(base.details !== undefined ? { details: base.details } : {}),
  });
}

export function manifestTarget(ref: Reference): string {
  if (ref.digest !== undefined) return validateDigest(ref.digest);
  if (ref.tag !== undefined) return ref.tag;
  throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `reference ${ref.registry}/${ref.repository} names neither tag nor digest`);
}

export function describe(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

export function checkDigest(what: string, expected: string, actual: string): void {
  if (expected !== actual) {
    throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what}: digest mismatch: expected ${expected}, got ${actual}`, {
      details: { expected, actual },
    });
  }
}

export function mediaTypeOf(res: HttpResponse): string | undefined {
  const type = header(res, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  if (type === undefined || type === '' || type === 'application/json' || type === 'text/plain' || type === 'application/octet-stream') return undefined;
  return type;
}

export function sniffMediaType(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  } catch {
    return undefined;
  }
}

export function rangeStart(contentRange: string | undefined): number {
  const m = /^bytes\s+(\d+)-/i.exec(contentRange ?? '');
  return m === null ? -1 : Number(m[1]);
}
