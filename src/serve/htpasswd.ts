/**
 * Client auth for `vmimg serve --htpasswd FILE`: HTTP Basic checked against an Apache htpasswd file of
 * bcrypt entries (`htpasswd -B`: `$2y$`, also `$2a$`/`$2b$`), as the CNCF registry's `auth.htpasswd`
 * does (it too takes bcrypt only). bcrypt is bcryptjs, pure JS (docs/DECISIONS.md says why not our own
 * nor the native `bcrypt`), run in worker threads (bcrypt-pool.ts) so checks never hold the event loop
 * the other clients are served from. bcrypt costs tens of milliseconds by design and a pull makes dozens of
 * requests with the same credentials, so a verified user:password is remembered as an HMAC under a
 * per-process key (bounded, never the password itself); a refused one is never remembered.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCode, VmimgError } from '../errors.js';
import { BcryptPool } from './bcrypt-pool.js';
import { ServeError } from './errors.js';

/** The realm in the `WWW-Authenticate: Basic` challenge. */
export const AUTH_REALM = 'vmimg serve';
/** Verified credentials remembered at once (the oldest is forgotten first). */
export const MAX_REMEMBERED_LOGINS = 1024;
/** bcrypt checks run at once by default (`--max-login-checks`), each in its own worker thread. */
export const DEFAULT_MAX_LOGIN_CHECKS = 2;
/** Checks waiting for a turn by default (`--max-login-queue`); more are answered 429 at once. */
export const DEFAULT_MAX_LOGIN_QUEUE = 16;

/** Bounds on bcrypt work, so parallel wrong logins cannot starve clients already logged in. */
export interface LoginLimits {
  /** bcrypt checks running at once (default 2). */
  readonly maxChecks?: number;
  /** Checks waiting for a turn (default 16); beyond it a login is refused with 429 TOOMANYREQUESTS. */
  readonly maxQueue?: number;
}

const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** The users of an htpasswd file and a check of `Authorization` headers against them. */
export class Htpasswd {
  private readonly key = randomBytes(32);
  private readonly verified = new Set<string>();
  private readonly pending = new Map<string, Promise<boolean>>();
  private readonly waiting: (() => void)[] = [];
  private readonly maxChecks: number;
  private readonly maxQueue: number;
  private readonly pool: BcryptPool;
  /** bcrypt checks running now. */
  running = 0;
  /** Logins refused with 429 because the queue was full. */
  refusedBusy = 0;

  private constructor(
    private readonly users: ReadonlyMap<string, string>,
    limits: LoginLimits,
  ) {
    this.maxChecks = limits.maxChecks ?? DEFAULT_MAX_LOGIN_CHECKS;
    this.maxQueue = limits.maxQueue ?? DEFAULT_MAX_LOGIN_QUEUE;
    this.pool = new BcryptPool(this.maxChecks);
  }

  /** Stops the bcrypt workers (idle ones never keep the process alive; this ends them at once). */
  close(): Promise<void> {
    return this.pool.close();
  }

  /** Checks waiting for a turn now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Reads FILE: `user:hash` lines, `#` comments and blank lines. ERR_INVALID_ARGUMENT naming the file
   * (and the line) when it cannot be read, holds a non-bcrypt entry, or names no user.
   */
  static load(path: string, limits: LoginLimits = {}): Htpasswd {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--htpasswd ${path}: cannot read it (${why})`, { cause: err });
    }
    const users = new Map<string, string>();
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/\r$/, '');
      if (line.trim() === '' || line.trimStart().startsWith('#')) return;
      const colon = line.indexOf(':');
      const [user, hash] = [line.slice(0, colon), line.slice(colon + 1).trim()];
      if (colon <= 0 || !BCRYPT.test(hash)) {
        throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--htpasswd ${path} line ${i + 1}: not a user:bcrypt-hash entry`, {
          hint: 'Only bcrypt entries are accepted (as by the CNCF registry): make them with `htpasswd -B FILE USER`.',
        });
      }
      users.set(user, hash);
    });
    if (users.size === 0) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--htpasswd ${path}: names no user`, { hint: 'Add one with `htpasswd -B FILE USER`.' });
    return new Htpasswd(users, limits);
  }

  /**
   * The user an `Authorization: Basic` header proves; a 401 ServeError (UNAUTHORIZED) when the header
   * is missing, malformed, or its user name or password is wrong; a 429 ServeError (TOOMANYREQUESTS)
   * when the login needs a bcrypt check and `maxQueue` checks already wait. A remembered login never waits.
   */
  async check(header: string | undefined): Promise<string> {
    const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
    if (m === null) throw new ServeError(401, 'UNAUTHORIZED', 'authentication required', { vmimg: ErrorCode.UNAUTHORIZED });
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const [user, password] = colon < 0 ? [decoded, ''] : [decoded.slice(0, colon), decoded.slice(colon + 1)];
    if (!(await this.verify(user, password))) {
      throw new ServeError(401, 'UNAUTHORIZED', 'wrong user name or password', { vmimg: ErrorCode.UNAUTHORIZED });
    }
    return user;
  }

  private async verify(user: string, password: string): Promise<boolean> {
    const hash = this.users.get(user);
    // an unknown user costs one bcrypt too, so response times do not tell which users exist
    const against = hash ?? this.users.values().next().value!;
    const key = createHmac('sha256', this.key).update(`${user}\0${password}\0${against}`).digest('base64');
    if (hash !== undefined && this.verified.has(key)) return true;
    let running = this.pending.get(key);
    if (running === undefined) {
      running = this.bounded(() => this.pool.compare(password, against)).finally(() => this.pending.delete(key));
      this.pending.set(key, running);
    }
    const ok = (await running) && hash !== undefined;
    if (ok) this.remember(key);
    return ok;
  }

  /** Runs `check` when one of `maxChecks` turns is free; refuses at once when `maxQueue` already wait. */
  private async bounded(check: () => Promise<boolean>): Promise<boolean> {
    if (this.running >= this.maxChecks) {
      if (this.waiting.length >= this.maxQueue) {
        this.refusedBusy++;
        throw new ServeError(429, 'TOOMANYREQUESTS', `too many logins being checked at once (more than --max-login-queue ${this.maxQueue} waiting); try again later`, {
          vmimg: ErrorCode.REGISTRY_UNAVAILABLE,
        });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve)); // the finishing check hands its turn over
    } else {
      this.running++;
    }
    try {
      return await check();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.running--;
    }
  }

  private remember(key: string): void {
    this.verified.add(key);
    if (this.verified.size > MAX_REMEMBERED_LOGINS) this.verified.delete(this.verified.values().next().value!);
  }
}
