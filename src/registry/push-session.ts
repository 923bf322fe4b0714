/**
 * PushSession: authorised requests to one registry's origin for writing (uploads, mounts, manifest
 * PUTs). Push never goes through mirrors: a mirror is a read cache. Tokens are asked for with push
 * scope (`repository:NAME:pull,push`), plus `repository:FROM:pull` for a cross-repository mount, in the
 * same token flow and credential chain as pulls (auth.ts, credentials.ts). One attempt per call: the
 * uploader retries under one RetryBudget per blob (util/retry.ts).
 */
import type { Agent } from 'undici';
import { Authorizer, saysTokenExpired } from './auth.js';
import { credentialChain } from './credentials.js';
import { plainHttpPolicy, registryEndpoints, type RegistryEndpoint } from './hosts.js';
import { networkError, statusError, unauthorizedHint } from './http-errors.js';
import { Transport, createAgent, header, readSmallText, type HttpRequest, type HttpResponse, type RequestBody } from './transport.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../util/retry.js';
import type { RegistryClientOptions } from './client.js';

/** One request of a push, relative to the origin (`/v2/...`) or an absolute upload Location. */
export interface PushRequest {
  /** What it is about, for messages (`blob sha256:… to 127.0.0.1:5000/app`). */
  readonly what: string;
  readonly method: HttpRequest['method'];
  /** `/v2/...` or an absolute URL (a Location the registry gave). */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Called once per send: a retry after a 401 gets a fresh body (streams cannot be replayed). */
  readonly body?: () => RequestBody | Promise<RequestBody>;
  /** Space-separated token scopes (default: pull,push on the session's repository). */
  readonly scope?: string;
  readonly signal?: AbortSignal | undefined;
}

/** Push scope for a repository, as the distribution token spec names it. */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

export class PushSession {
  readonly endpoint: RegistryEndpoint;
  readonly retryPolicy: RetryPolicy;
  private readonly agent: Agent;
  private readonly transport: Transport;
  private readonly authorizer: Authorizer;

  /** `registry` as in a reference (`127.0.0.1:5000`, `ghcr.io`); options as the RegistryClient's. */
  constructor(
    readonly registry: string,
    readonly repository: string,
    options: RegistryClientOptions = {},
  ) {
    this.agent = createAgent(options);
    this.transport = new Transport(this.agent, options.userAgent ?? 'vmimg/0.1', plainHttpPolicy(options));
    this.authorizer = new Authorizer({ transport: this.transport, credentials: credentialChain(options), ...(options.now ? { now: options.now } : {}) });
    this.endpoint = registryEndpoints(registry, { ...options, mirrors: {} }).find((e) => !e.mirror)!;
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  }

  /** Absolute URL of a path or Location (relative Locations resolve against the origin). */
  url(path: string): string {
    return new URL(path, `${this.endpoint.url}/`).toString();
  }

  /**
   * One authorised request: a second send with a fresh token after a 401 (or a 403 saying the token is
   * bad). Non-2xx answers other than those come back to the caller, which knows what 404 or 416 means.
   * A 401/403 after the fresh token is ERR_UNAUTHORIZED (no push access).
   */
  async send(req: PushRequest): Promise<HttpResponse> {
    const scope = req.scope ?? pushScope(this.repository);
    const url = this.url(req.path);
    const once = async (auth: string | undefined) =>
      this.transport.send({
        url,
        method: req.method,
        headers: { ...req.headers, ...(auth ? { authorization: auth } : {}) },
        ...(req.body ? { body: await req.body() } : {}),
        signal: req.signal,
      });
    try {
      const first = await this.authorizer.headerFor(this.endpoint, scope, req.signal);
      let res = await once(first);
      if (res.status !== 401 && res.status !== 403) return res;
      const body = await readSmallText(res.body);
      if (res.status === 403 && (first === undefined || !saysTokenExpired(res.headers['www-authenticate'], body))) throw this.refused(req, url, 403, body);
      const fresh = await this.authorizer.onChallenge(this.endpoint, res.headers['www-authenticate'], scope, first, req.signal);
      if (fresh === undefined) throw this.refused(req, url, res.status, body, 'no credentials to answer the challenge');
      res = await once(fresh);
      if (res.status !== 401 && res.status !== 403) return res;
      throw this.refused(req, url, res.status, await readSmallText(res.body), 'credentials refused');
    } catch (err) {
      throw networkError(err, url, req.signal);
    }
  }

  /** A non-2xx answer the caller did not expect → the coded error (body read for the registry's reason). */
  async unexpected(req: PushRequest, res: HttpResponse): Promise<VmimgError> {
    const body = await readSmallText(res.body);
    return statusError({ what: req.what, url: res.url, status: res.status, body, registry: this.registry, retryAfter: header(res, 'retry-after') });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private refused(req: PushRequest, url: string, status: number, body: string, why?: string): VmimgError {
    const base = statusError({ what: req.what, url, status, body, registry: this.registry });
    const scope = req.scope ?? pushScope(this.repository);
    return new VmimgError(ErrorCode.UNAUTHORIZED, `${why ? `${why}: ` : ''}${base.message} (push needs ${scope})`, {
      hint: unauthorizedHint(this.registry),
      details: { ...base.details, scope },
    });
  }
}
