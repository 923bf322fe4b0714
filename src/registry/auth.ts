/**
 * Authorization for registry requests: Basic, and Bearer tokens (anonymous GET; with credentials the
 * OAuth2 POST, falling back to GET with Basic). Tokens are cached per endpoint + scope until they expire,
 * with a single in-flight fetch per scope.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { parseWWWAuthenticate, type Challenge } from './challenge.js';
import type { Credential, CredentialLookup } from './credentials.js';
import type { RegistryEndpoint } from './hosts.js';
import { isLoopback } from './names.js';
import { redactUrl, registryErrorSummary, unauthorizedHint } from './http-errors.js';
import { header, readSmallText, type HttpResponse, type Transport } from './transport.js';
import { parseRetryAfter } from '../util/retry.js';

export { parseWWWAuthenticate, type Challenge } from './challenge.js';

export interface AuthorizerOptions {
  readonly transport: Transport;
  readonly credentials: CredentialLookup;
  /** OAuth2 client_id sent to token servers (default `vmimg`). */
  readonly clientId?: string;
  /** Clock, for tests of expiry. */
  readonly now?: () => number;
}

interface CachedToken {
  readonly header: string;
  readonly expiresAt: number;
}

/** Lifetime assumed when a token answer has no expires_in (the distribution spec's default). */
const DEFAULT_EXPIRES_IN = 60;

export class Authorizer {
  private readonly challenges = new Map<string, Challenge>();
  private readonly cache = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private readonly now: () => number;

  constructor(private readonly options: AuthorizerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The header to send up front, when this endpoint has challenged us before; else undefined. */
  async headerFor(endpoint: RegistryEndpoint, scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenges.get(endpoint.url);
    if (challenge === undefined) return undefined;
    return (await this.obtain(endpoint, challenge, scope, scopeList(scope), signal))?.header;
  }

  /**
   * After a 401 (or a 403 saying the token is bad): remember the challenge, drop the stale header from
   * the cache and get a fresh one. Undefined when there is nothing we could send.
   */
  async onChallenge(
    endpoint: RegistryEndpoint,
    wwwAuthenticate: string | string[] | undefined,
    scope: string,
    stale: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const challenge = pickChallenge(parseWWWAuthenticate(wwwAuthenticate)) ?? this.challenges.get(endpoint.url);
    if (challenge === undefined) return undefined;
    const key = cacheKey(endpoint, challenge, scope);
    if (stale !== undefined && this.cache.get(key)?.header === stale) this.cache.delete(key);
    const extra = (challenge.params.scope ?? '').split(' ').filter((s) => s !== '');
    const scopes = [...new Set([...scopeList(scope), ...extra])];
    const token = await this.obtain(endpoint, challenge, scope, scopes, signal);
    // remembered once answered: a token server failing for one request (a 401 on an optional one, such
    // as the lazy index lookup) does not put itself in front of every later request to the endpoint,
    // which may need no token at all (breaker, session 14: a whole pull then failed on the token server)
    this.challenges.set(endpoint.url, challenge);
    return token?.header;
  }

  private async obtain(
    endpoint: RegistryEndpoint,
    challenge: Challenge,
    scope: string,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<CachedToken | undefined> {
    const cred = await this.options.credentials(endpoint.credentialKey);
    if (challenge.scheme === 'basic') {
      if (cred?.username === undefined) return undefined;
      return { header: basic(cred.username, cred.password ?? ''), expiresAt: Infinity };
    }
    if (challenge.scheme !== 'bearer') return undefined;
    const key = cacheKey(endpoint, challenge, scope);
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.expiresAt > this.now()) return cached;
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.fetchToken(endpoint, challenge, scopes, cred, signal);
      this.inflight.set(key, pending);
      const settle = () => this.inflight.delete(key);
      pending.then(
        (t) => {
          settle();
          this.cache.set(key, t);
        },
        settle,
      );
    }
    return pending;
  }

  private async fetchToken(
    endpoint: RegistryEndpoint,
    challenge: Challenge,
    scopes: string[],
    cred: Credential | undefined,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    if (cred?.registryToken !== undefined) return { header: `Bearer ${cred.registryToken}`, expiresAt: Infinity };
    const realm = challenge.params.realm;
    if (realm === undefined || !/^https?:\/\//i.test(realm)) {
      throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${endpoint.host} asked for a bearer token without a usable realm`);
    }
    if (cred !== undefined && realm.toLowerCase().startsWith('http:') && endpoint.scheme === 'https' && !isLoopback(new URL(realm).host)) {
      throw new VmimgError(ErrorCode.UNAUTHORIZED, `${endpoint.host} sends us to a token server over plain HTTP (${redactUrl(realm)}); credentials not sent`, {
        hint: `Mark the registry insecure (--insecure-registry ${endpoint.host}) only if you trust the network.`,
      });
    }
    const service = challenge.params.service;
    let res: HttpResponse;
    if (cred?.identityToken !== undefined || cred?.username !== undefined) {
      res = await this.postToken(realm, service, scopes, cred, signal);
      if ([400, 404, 405].includes(res.status) && cred.identityToken === undefined) {
        await res.body.dump().catch(() => undefined);
        res = await this.getToken(realm, service, scopes, cred, signal);
      }
    } else {
      res = await this.getToken(realm, service, scopes, undefined, signal);
    }
    return this.readToken(endpoint, res, cred);
  }

  private postToken(realm: string, service: string | undefined, scopes: string[], cred: Credential, signal?: AbortSignal) {
    const form = new URLSearchParams();
    if (cred.identityToken !== undefined) {
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', cred.identityToken);
    } else {
      form.set('grant_type', 'password');
      form.set('username', cred.username ?? '');
      form.set('password', cred.password ?? '');
    }
    if (service !== undefined) form.set('service', service);
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    form.set('client_id', this.options.clientId ?? 'vmimg');
    form.set('access_type', 'offline');
    return this.options.transport.send({
      url: realm,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      signal,
    });
  }

  private getToken(realm: string, service: string | undefined, scopes: string[], cred: Credential | undefined, signal?: AbortSignal) {
    const url = new URL(realm);
    if (service !== undefined) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (cred?.username !== undefined) {
      url.searchParams.set('account', cred.username);
      headers.authorization = basic(cred.username, cred.password ?? '');
    }
    return this.options.transport.send({ url: url.toString(), method: 'GET', headers, signal });
  }

  private async readToken(endpoint: RegistryEndpoint, res: HttpResponse, cred: Credential | undefined): Promise<CachedToken> {
    const text = await readSmallText(res.body, 1 << 20);
    if (res.status === 401 || res.status === 403) {
      const who = cred !== undefined ? `the credentials from ${cred.source}` : 'anonymous access';
      throw new VmimgError(ErrorCode.UNAUTHORIZED, `token server ${redactUrl(res.url)} refused ${who} for ${endpoint.registry} (HTTP ${res.status})`, {
        hint: unauthorizedHint(endpoint.registry),
        details: { status: res.status },
      });
    }
    if (res.status < 200 || res.status > 299) {
      const summary = registryErrorSummary(text);
      const code = res.status === 429 || res.status >= 500 ? ErrorCode.REGISTRY_UNAVAILABLE : ErrorCode.REGISTRY_ERROR;
      const retryAfterMs = parseRetryAfter(header(res, 'retry-after'));
      throw new VmimgError(code, `token server ${redactUrl(res.url)} answered HTTP ${res.status}${summary ? `: ${summary}` : ''}`, {
        details: { status: res.status, url: redactUrl(res.url), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
      });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new VmimgError(ErrorCode.REGISTRY_ERROR, `token server ${redactUrl(res.url)} answered something that is not JSON`);
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new VmimgError(ErrorCode.REGISTRY_ERROR, `token server ${redactUrl(res.url)} answered without a token`);
    }
    const life = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_EXPIRES_IN;
    // Renew a little early so a token does not expire between cache lookup and use.
    const margin = Math.min(5_000, life * 100);
    return { header: `Bearer ${token}`, expiresAt: this.now() + life * 1000 - margin };
  }
}

/** `scope` may name several, space-separated (`repository:a:pull,push repository:b:pull` for a cross-repository mount). */
function scopeList(scope: string): string[] {
  return scope.split(' ').filter((s) => s !== '');
}

/** Bearer beats Basic; other schemes we cannot answer. */
function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}

function cacheKey(endpoint: RegistryEndpoint, challenge: Challenge, scope: string): string {
  return `${endpoint.url}|${challenge.params.realm ?? ''}|${challenge.params.service ?? ''}|${scope}`;
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** A 403 whose body or header says the token (not the permission) is the problem. */
export function saysTokenExpired(wwwAuthenticate: string | string[] | undefined, body: string): boolean {
  const challenge = parseWWWAuthenticate(wwwAuthenticate).find((c) => c.scheme === 'bearer');
  if (challenge?.params.error === 'invalid_token') return true;
  return /token[^"]{0,40}(expired|invalid)|(expired|invalid)[^"]{0,20}token/i.test(body);
}
