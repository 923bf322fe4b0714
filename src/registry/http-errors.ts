/** Turning transport failures and registry answers into VmimgErrors with redacted URLs and the registry's own diagnostics. */
import { ErrorCode, VmimgError, type ErrorCodeValue } from '../errors.js';
import { errnoOf, hostOf, isRetryableErrno, parseRetryAfter } from '../util/retry.js';

/** `scheme://host/path` with user info, query (signed-URL tokens) and fragment removed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search !== '' ? '?…' : ''}`;
  } catch {
    return url.replace(/\?.*$/, '?…');
  }
}

/** Registry error JSON → `CODE: message; CODE2: message2` (details dropped: they can be large). */
export function registryErrorSummary(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: unknown; message?: unknown }[] };
    if (!Array.isArray(parsed.errors) || parsed.errors.length === 0) return undefined;
    return parsed.errors
      .map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': '))
      .filter((s) => s !== '')
      .join('; ')
      .slice(0, 500);
  } catch {
    return undefined;
  }
}

/** Connection-level failures worth another try (not TLS, not DNS "no such host"). */
export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof VmimgError) return err.code === ErrorCode.NETWORK && err.details?.retryable === true;
  return isRetryableErrno(errnoOf(err));
}

function isTlsError(err: unknown, code: string | undefined): boolean {
  if (code !== undefined && /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|EPROTO$)/.test(code)) return true;
  return err instanceof Error && /wrong version number|ssl|tls/i.test(err.message);
}

/** Any thrown transport error → ERR_ABORTED / ERR_NETWORK with a hint; VmimgErrors pass through. */
export function networkError(err: unknown, url: string, signal?: AbortSignal): VmimgError {
  if (err instanceof VmimgError) return err;
  if (signal?.aborted === true || (err instanceof Error && err.name === 'AbortError')) {
    return new VmimgError(ErrorCode.ABORTED, `request to ${redactUrl(url)} aborted`, { cause: err });
  }
  const code = errnoOf(err);
  const where = redactUrl(url);
  const why = err instanceof Error ? err.message : String(err);
  if (isTlsError(err, code)) {
    const plain = /wrong version number|packet length too long|http request/i.test(why);
    return new VmimgError(ErrorCode.NETWORK, `TLS failure talking to ${where}: ${why}`, {
      cause: err,
      hint: plain
        ? 'The server seems to speak plain HTTP: use http:// for it, or mark it with --insecure-registry HOST (loopback hosts use HTTP by default).'
        : 'Check the registry certificate (NODE_EXTRA_CA_CERTS for a private CA), or mark the host with --insecure-registry HOST.',
      details: { url: where, ...(code !== undefined ? { errno: code } : {}), retryable: false },
    });
  }
  const stalled = code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT';
  const host = hostOf(where);
  const reason = stalled ? `${code === 'UND_ERR_HEADERS_TIMEOUT' ? 'no headers' : 'no data'} in time from ${host}` : undefined;
  return new VmimgError(ErrorCode.NETWORK, `${stalled ? 'stalled' : 'connection failed'}: ${where}: ${why}`, {
    cause: err,
    hint: stalled
      ? 'The registry stopped sending data; try again, or raise "idleTimeoutSeconds" in the vmimg config file.'
      : 'Check the network and the registry address.',
    details: { url: where, ...(code !== undefined ? { errno: code } : {}), retryable: isRetryableNetworkError(err), ...(reason ? { reason } : {}) },
  });
}

export interface StatusContext {
  /** What was asked for, e.g. `manifest library/alpine:latest`. */
  readonly what: string;
  readonly url: string;
  readonly status: number;
  /** Up to a few KiB of the response body. */
  readonly body: string;
  readonly registry: string;
  /** The answer's Retry-After header, if any (kept in `details.retryAfterMs`). */
  readonly retryAfter?: string | undefined;
}

/** A non-2xx answer → the matching VmimgError, naming what was asked for and quoting the registry. */
export function statusError(ctx: StatusContext): VmimgError {
  const summary = registryErrorSummary(ctx.body);
  const tail = `(HTTP ${ctx.status} from ${redactUrl(ctx.url)}${summary !== undefined ? `: ${summary}` : ''})`;
  const retryAfterMs = parseRetryAfter(ctx.retryAfter);
  const details = {
    status: ctx.status,
    url: redactUrl(ctx.url),
    ...(summary !== undefined ? { registryError: summary } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
  let code: ErrorCodeValue = ErrorCode.REGISTRY_ERROR;
  let hint: string | undefined;
  if (ctx.status === 404) code = ErrorCode.NOT_FOUND;
  else if (ctx.status === 401 || ctx.status === 403) {
    code = ErrorCode.UNAUTHORIZED;
    hint = unauthorizedHint(ctx.registry);
  } else if (ctx.status === 429 || ctx.status >= 500) {
    code = ErrorCode.REGISTRY_UNAVAILABLE;
    hint = 'The registry is busy or failing; try again later.';
  }
  const message = code === ErrorCode.NOT_FOUND ? `${ctx.what} not found ${tail}` : `${ctx.what}: ${tail}`;
  return new VmimgError(code, message, { details, ...(hint !== undefined ? { hint } : {}) });
}

export function unauthorizedHint(registry: string): string {
  return `Give credentials for ${registry} with --username/--password-stdin, VMIMG_REGISTRY_AUTH, or \`docker login ${registry}\`.`;
}
