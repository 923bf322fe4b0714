/**
 * The one retry policy for network work. Every layer that used to retry (transport, client, store) now
 * leaves it to a RetryBudget made per operation — a manifest GET, one blob download with its resumes —
 * so retries never nest. A budget counts attempts in a row without progress and the time the operation
 * has spent failing (failed attempts plus waits); it honours Retry-After, and announces each wait before
 * it starts. A Retry-After the budget cannot afford fails at once, saying what the registry asked for.
 * Disk errors (ENOSPC, EACCES, ...) and content errors (digest, size) are never retried.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, VmimgError } from '../errors.js';

export interface RetryPolicy {
  /** Attempts in a row without progress before giving up (default 5). */
  readonly attempts: number;
  /** First backoff delay; doubled each attempt, with jitter (default 500 ms). */
  readonly baseDelayMs: number;
  /** Longest backoff delay (default 15 s); a Retry-After may ask for more, within the budget. */
  readonly maxDelayMs: number;
  /** Time one operation may spend failing — failed attempts plus waits — before giving up (default 5 min). */
  readonly budgetMs: number;
}

/** 5 attempts in a row, 0.5 s doubling to at most 15 s, 5 minutes of failing per operation. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 15_000, budgetMs: 300_000 };

/** A wait about to start (`retrying in 12 s: HTTP 429 from HOST`), for progress displays. */
export interface RetryNotice {
  readonly kind: 'retry';
  /** What is being fetched, e.g. `blob sha256:0123456789ab`. */
  readonly what: string;
  /** Why, e.g. `HTTP 429 from registry.example`. */
  readonly reason: string;
  readonly delayMs: number;
  /** The attempt that failed (1-based) and the most allowed in a row. */
  readonly attempt: number;
  readonly attempts: number;
  /** `retrying in 12 s: HTTP 429 from registry.example`. */
  readonly message: string;
}

/** No byte for a while (see throughput.ts); the display says so instead of freezing silently. */
export interface StallNotice {
  readonly kind: 'stall';
  readonly what: string;
  readonly seconds: number;
  /** `no data from registry.example for 5 s`. */
  readonly message: string;
}

/** What a network operation tells a display while it waits. */
export type NetworkNotice = RetryNotice | StallNotice;
/** Receives notices as they happen; must not throw. */
export type NoticeListener = (notice: NetworkNotice) => void;

/** HTTP statuses worth another try (as go-containerregistry's): timeouts, rate limits, server trouble. */
export const RETRY_STATUS: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Connection-level errnos worth another try (not TLS, not DNS "no such host"). */
const RETRYABLE_ERRNO = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Local trouble another try cannot fix. */
const DISK_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'EIO']);

/** The first errno-like `code` in an error's cause chain (undici nests them; our own codes are skipped). */
export function errnoOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code !== 'UND_ERR' && !(e instanceof VmimgError)) return code;
    e = e.cause;
  }
  return undefined;
}

/** True for a connection-level errno worth another try (ECONNRESET, timeouts, ...). */
export function isRetryableErrno(code: string | undefined): boolean {
  return code !== undefined && RETRYABLE_ERRNO.has(code);
}

/** True for an error a later attempt may not meet: a dropped or slow connection, 429/5xx. */
export function isRetryable(err: unknown): boolean {
  const errno = errnoOf(err);
  if (errno !== undefined && DISK_ERRNO.has(errno)) return false;
  if (err instanceof VmimgError) {
    if (err.code === ErrorCode.NETWORK) return err.details?.retryable !== false;
    if (err.code === ErrorCode.REGISTRY_UNAVAILABLE) {
      const status = err.details?.status;
      return typeof status !== 'number' || RETRY_STATUS.has(status);
    }
    return false;
  }
  return isRetryableErrno(errno);
}

/** `Retry-After` (seconds or an HTTP date) → milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** `12 s`, `0.5 s`, `2 min`, `1 h 30 min`: a wait as a person reads it. */
export function humanWait(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${Math.round(s * 10) / 10} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  const h = Math.floor(s / 3600);
  const m = Math.round((s - h * 3600) / 60);
  return m > 0 ? `${h} h ${m} min` : `${h} h`;
}

/** `HTTP 429 from host`, `ECONNRESET from host`, or the error's own `details.reason`. */
export function retryReason(err: unknown): string {
  const details = err instanceof VmimgError ? err.details : undefined;
  if (typeof details?.reason === 'string') return details.reason;
  const from = typeof details?.url === 'string' ? ` from ${hostOf(details.url)}` : '';
  if (typeof details?.status === 'number') return `HTTP ${details.status}${from}`;
  const errno = errnoOf(err);
  if (errno !== undefined) return `${errno}${from}`;
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 120 ? `${message.slice(0, 117)}...` : message;
}

/** `3600 s (1 h)`, or `30 s` when the human form says no more. */
function sayRetryAfter(ms: number): string {
  const seconds = `${Math.round(ms / 1000)} s`;
  const human = humanWait(ms);
  return human === seconds ? seconds : `${seconds} (${human})`;
}

/** `host[:port]` of a URL, for messages (the input itself when it is not a URL). */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** What a RetryBudget names in its notices and errors, its abort signal and listener. */
export interface RetryBudgetOptions {
  readonly what: string;
  readonly signal?: AbortSignal | undefined;
  readonly onNotice?: NoticeListener | undefined;
  /** Clock (tests). */
  readonly now?: () => number;
}

/** One operation's allowance of retries; see the module comment. */
export class RetryBudget {
  private readonly policy: RetryPolicy;
  private failures = 0;
  private failingSince: number | undefined;
  private attemptStart: number;
  private readonly now: () => number;

  constructor(policy: Partial<RetryPolicy> | undefined, private readonly options: RetryBudgetOptions) {
    this.policy = { ...DEFAULT_RETRY_POLICY, ...policy };
    this.now = options.now ?? Date.now;
    this.attemptStart = this.now();
  }

  /** Marks the start of an attempt (its time counts against the budget if it fails). */
  attempt(): void {
    this.attemptStart = this.now();
  }

  /** The last attempt moved the operation forward: the count and the clock start over. */
  progressed(): void {
    this.failures = 0;
    this.failingSince = undefined;
  }

  /**
   * After a failed attempt: waits (announcing it) and returns, or throws — `err` itself when it is not
   * retryable or the attempts are used up, ERR_REGISTRY_UNAVAILABLE when a Retry-After exceeds what is left.
   */
  async failed(err: unknown): Promise<void> {
    if (this.options.signal?.aborted === true || !isRetryable(err)) throw err;
    this.failures++;
    this.failingSince ??= this.attemptStart;
    const left = this.policy.budgetMs - (this.now() - this.failingSince);
    const asked = err instanceof VmimgError ? (err.details?.retryAfterMs as number | undefined) : undefined;
    if (asked !== undefined && asked > left) throw this.tooLong(err as VmimgError, asked, left);
    if (this.failures >= this.policy.attempts) throw this.givingUp(err, `after ${this.failures} attempts`);
    const backoff = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** (this.failures - 1));
    const delay = asked ?? backoff / 2 + Math.random() * (backoff / 2);
    if (delay > left) throw this.givingUp(err, `as the ${humanWait(this.policy.budgetMs)} retry budget is spent`);
    const reason = retryReason(err);
    const message = `retrying in ${humanWait(delay)}: ${reason}`;
    this.options.onNotice?.({ kind: 'retry', what: this.options.what, reason, delayMs: delay, attempt: this.failures, attempts: this.policy.attempts, message });
    try {
      await sleep(delay, undefined, this.options.signal ? { signal: this.options.signal } : {});
    } catch (cause) {
      throw new VmimgError(ErrorCode.ABORTED, `${this.options.what}: aborted while waiting to retry`, { cause });
    }
  }

  private tooLong(err: VmimgError, asked: number, left: number): VmimgError {
    return new VmimgError(
      ErrorCode.REGISTRY_UNAVAILABLE,
      `${this.options.what}: ${retryReason(err)} with Retry-After ${sayRetryAfter(asked)}; ` +
        `that is more than the ${humanWait(Math.max(0, left))} left of the retry budget`,
      {
        cause: err,
        hint: 'Try again later, or raise "retryBudgetSeconds" in the vmimg config file.',
        details: { ...err.details, retryAfterSeconds: Math.round(asked / 1000), budgetSeconds: Math.round(this.policy.budgetMs / 1000) },
      },
    );
  }

  private givingUp(err: unknown, why: string): unknown {
    if (!(err instanceof VmimgError)) return err;
    return new VmimgError(err.code, `${err.message} (gave up ${why})`, {
      cause: err.cause ?? err,
      ...(err.hint !== undefined ? { hint: err.hint } : {}),
      ...(err.details !== undefined ? { details: err.details } : {}),
    });
  }
}

/** Runs `attempt` until it succeeds or the budget says stop. */
export async function withRetry<T>(budget: RetryBudget, attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    budget.attempt();
    try {
      return await attempt();
    } catch (err) {
      await budget.failed(err);
    }
  }
}
