/**
 * The steps under every RegistryClient call (client.ts says what to ask; this says how): each capable
 * endpoint in order, mirrors first; the origin retried under one RetryBudget per call (util/retry.ts);
 * auth, with one fresh token after a 401 or a 403 that says the token expired; a stall notice while
 * headers do not come. The answer's body is the handler's.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import type { Authorizer } from './auth.js';
import { saysTokenExpired } from './auth.js';
import type { RegistryEndpoint } from './hosts.js';
import { networkError, statusError } from './http-errors.js';
import { unauthorized, type Step } from './responses.js';
import { header, readSmallText, type HttpResponse, type Transport } from './transport.js';
import { RetryBudget, hostOf, humanWait, withRetry, type NoticeListener, type RetryPolicy } from '../util/retry.js';
import type { ThroughputRule } from '../util/throughput.js';

/** What the steps need from the client: its transport, authorizer, endpoints and policies. */
export interface StepParts {
  readonly transport: Transport;
  readonly authorizer: Authorizer;
  /** The endpoints tried for a registry, mirrors first. */
  readonly endpoints: (registry: string) => RegistryEndpoint[];
  readonly retryPolicy: RetryPolicy;
  /** Its `stallNoticeMs` is how long headers may take before a stall notice. */
  readonly throughputRule: ThroughputRule;
  /** Notices of steps that name no listener of their own. */
  readonly onNotice?: NoticeListener | undefined;
  /** Credential helpers running now: a stall while one runs is the helper's, not the registry's. */
  readonly helpersRunning: () => readonly string[];
}

/** Handles a 2xx answer of one endpoint; what it returns is the call's result. */
export type AnswerHandler<T> = (res: HttpResponse, endpoint: RegistryEndpoint) => Promise<T>;

/** Runs a client's steps (see the file's comment). Errors: the coded ones of http-errors.ts and responses.ts. */
export class StepCaller {
  constructor(private readonly parts: StepParts) {}

  /**
   * Tries each capable endpoint in order; a mirror's failure moves on, the origin's is final. The origin
   * is retried under one budget per call, unless the step is `once` (its caller retries).
   */
  async call<T>(step: Step, handle: AnswerHandler<T>): Promise<T> {
    const endpoints = this.parts.endpoints(step.repo.registry).filter((e) => e.capabilities[step.capability]);
    let lastError: unknown;
    for (const endpoint of endpoints) {
      const where = `${endpoint.url}${step.path}`;
      const one = () => this.callOne(endpoint, step, handle).catch((err: unknown) => Promise.reject(networkError(err, where, step.signal)));
      try {
        if (endpoint.mirror || step.once === true) return await one();
        const onNotice = step.onNotice ?? this.parts.onNotice;
        const policy = step.retry !== undefined ? { ...this.parts.retryPolicy, ...step.retry } : this.parts.retryPolicy;
        return await withRetry(new RetryBudget(policy, { what: step.what, signal: step.signal, onNotice }), one);
      } catch (err) {
        const e = networkError(err, where, step.signal);
        if (!endpoint.mirror || e.code === ErrorCode.ABORTED) throw e;
        lastError = e;
      }
    }
    if (lastError !== undefined) throw lastError;
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `no host for ${step.repo.registry} may ${step.capability === 'resolve' ? 'resolve tags' : 'pull'}`, {
      hint: 'Allow origin fallback, or mark a mirror as trusted to resolve tags.',
    });
  }

  /** One attempt at one endpoint: auth, the request, `handle` on a 2xx answer. */
  private async callOne<T>(endpoint: RegistryEndpoint, step: Step, handle: AnswerHandler<T>): Promise<T> {
    const res = await this.sayIfSlow(step, endpoint, () => this.authed(endpoint, step));
    if (res.status < 200 || res.status > 299) {
      const body = await readSmallText(res.body);
      const retryAfter = header(res, 'retry-after');
      throw statusError({ what: step.what, url: res.url, status: res.status, body, registry: step.repo.registry, retryAfter });
    }
    try {
      return await handle(res, endpoint);
    } catch (err) {
      res.body.on('error', () => undefined).destroy();
      throw err;
    }
  }

  /** Runs `answer`, announcing a stall when it takes longer than the stall notice (headers that do not come). */
  private async sayIfSlow<T>(step: Step, endpoint: RegistryEndpoint, answer: () => Promise<T>): Promise<T> {
    const onNotice = step.onNotice ?? this.parts.onNotice;
    const after = this.parts.throughputRule.stallNoticeMs;
    const message = (): string => {
      const helpers = this.parts.helpersRunning();
      const from = helpers.length > 0 ? `credential helper ${helpers.join(', ')}` : hostOf(endpoint.url);
      return `no answer from ${from} for ${humanWait(after)}`;
    };
    const timer = onNotice && setTimeout(() => onNotice({ kind: 'stall', what: step.what, seconds: Math.round(after / 1000), message: message() }), after);
    try {
      return await answer();
    } finally {
      clearTimeout(timer);
    }
  }

  /** One request with auth: a second try with a fresh token after a 401, or a 403 that says the token is bad. */
  private async authed(endpoint: RegistryEndpoint, step: Step): Promise<HttpResponse> {
    const { transport, authorizer } = this.parts;
    const scope = `repository:${step.repo.repository}:pull`;
    const url = `${endpoint.url}${step.path}`;
    const send = (auth: string | undefined) =>
      transport.send({ url, method: step.method, headers: { ...step.headers, ...(auth ? { authorization: auth } : {}) }, signal: step.signal, ...(step.direct === true ? { direct: true } : {}), ...(step.idleTimeoutMs !== undefined ? { idleTimeoutMs: step.idleTimeoutMs } : {}) });
    const first = await authorizer.headerFor(endpoint, scope, step.signal);
    let res = await send(first);
    if (res.status !== 401 && res.status !== 403) return res;
    const body = await readSmallText(res.body);
    if (res.status === 403 && (first === undefined || !saysTokenExpired(res.headers['www-authenticate'], body))) {
      throw statusError({ what: step.what, url, status: 403, body, registry: step.repo.registry });
    }
    const fresh = await authorizer.onChallenge(endpoint, res.headers['www-authenticate'], scope, first, step.signal);
    if (fresh === undefined) throw unauthorized(step, url, res.status, body, 'no credentials to answer the challenge');
    res = await send(fresh);
    if (res.status === 401 || res.status === 403) {
      const again = await readSmallText(res.body);
      throw unauthorized(step, url, res.status, again, 'credentials refused');
    }
    return res;
  }
}
