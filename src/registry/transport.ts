/**
 * The HTTP steps under the registry client, composed small: redirect(send). One attempt per call:
 * retries belong to the operation above (util/retry.ts), so they never nest.
 * Auth sits on top (client.ts); this layer knows nothing about registries' APIs.
 */
import type { Readable } from 'node:stream';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import { Agent, request } from './undici-parts.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { networkError, redactUrl } from './http-errors.js';
import { isLoopback } from './names.js';
import { directGet, type DirectOptions } from './direct-get.js';

export type ResponseBody = Dispatcher.ResponseData['body'];

/** A request body: text, bytes, or a stream (sent once: a redirect cannot replay a stream). */
export type RequestBody = string | Uint8Array | Readable;

export interface HttpRequest {
  readonly url: string;
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: RequestBody;
  readonly signal?: AbortSignal | undefined;
  /** A GET of a large body: read by direct-get.ts into 1 MiB blocks, on a connection of its own. */
  readonly direct?: boolean;
  /** This request's wait for headers and between body chunks (ms), when not the agent's. */
  readonly idleTimeoutMs?: number;
}

export interface HttpResponse {
  /** The URL that answered, after redirects. */
  readonly url: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: ResponseBody;
}

const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads at most `limit` bytes of a body as text (for error messages), discarding the rest. */
export async function readSmallText(body: ResponseBody, limit = 8192): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      if (size < limit) parts.push(b.subarray(0, limit - size));
      size += b.length;
      if (size >= limit) break;
    }
  } catch {
    // a broken error body is still an error answer; say what we have
  } finally {
    body.destroy();
  }
  return Buffer.concat(parts).toString('utf8');
}

export async function discard(res: HttpResponse): Promise<void> {
  try {
    await res.body.dump({ limit: 65536 });
  } catch {
    res.body.destroy();
  }
}

/** Connection settings shared by the registry client and push sessions (seconds in the config file, ms here). */
export interface AgentOptions {
  /** Longest wait for headers or between body chunks (default 30 s). */
  readonly idleTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Connections per origin (default 6). */
  readonly connections?: number;
  readonly tls?: { readonly ca?: string | Buffer; readonly rejectUnauthorized?: boolean };
}

/** The idle timeout of requests when the options name none (ms). */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/** The undici Agent every registry conversation uses: keep-alive, idle and connect timeouts, TLS options. */
export function createAgent(options: AgentOptions = {}): UndiciAgent {
  const idle = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  return new Agent({
    keepAliveTimeout: 30_000,
    connections: options.connections ?? 6,
    headersTimeout: idle,
    bodyTimeout: idle,
    connect: { timeout: options.connectTimeoutMs ?? 15_000, ...(options.tls ?? {}) },
  });
}

export class Transport {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly userAgent: string,
    /** Hosts a redirect may send us to over plain HTTP (default: loopback only). */
    private readonly allowPlainHttp: (host: string) => boolean = isLoopback,
    /** Timeouts and TLS settings for direct GETs (the agent's). */
    private readonly directOptions: DirectOptions = {},
  ) {}

  /** One request, following redirects; failures are ERR_NETWORK (`details.retryable`) or ERR_ABORTED. */
  async send(req: HttpRequest): Promise<HttpResponse> {
    try {
      return await this.followRedirects(req);
    } catch (err) {
      throw networkError(err, req.url, req.signal);
    }
  }

  /** Follows up to 10 redirects; Authorization goes only to the origin it was meant for. */
  private async followRedirects(req: HttpRequest): Promise<HttpResponse> {
    let current = req;
    for (let hops = 0; ; hops++) {
      const res = await this.once(current);
      const location = header(res, 'location');
      if (!REDIRECT_STATUS.has(res.status) || location === undefined) return res;
      await discard(res);
      if (hops >= MAX_REDIRECTS) {
        throw new VmimgError(ErrorCode.REGISTRY_ERROR, `more than ${MAX_REDIRECTS} redirects from ${redactUrl(req.url)}`);
      }
      const to = new URL(location, current.url);
      checkRedirectTarget(current.url, to, this.allowPlainHttp);
      current = redirected(current, to, res.status);
    }
  }

  private async once(req: HttpRequest): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
    if (req.direct === true && req.method === 'GET' && req.body === undefined) {
      const direct = req.idleTimeoutMs !== undefined ? { ...this.directOptions, idleTimeoutMs: req.idleTimeoutMs } : this.directOptions;
      const res = await directGet(req.url, headers, req.signal, direct);
      return { url: req.url, status: res.status, headers: res.headers, body: res.body as unknown as ResponseBody };
    }
    const res = await request(req.url, {
      dispatcher: this.dispatcher,
      method: req.method,
      headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
      ...(req.signal !== undefined ? { signal: req.signal } : {}),
      ...(req.idleTimeoutMs !== undefined ? { headersTimeout: req.idleTimeoutMs, bodyTimeout: req.idleTimeoutMs } : {}),
    });
    return { url: req.url, status: res.statusCode, headers: res.headers, body: res.body };
  }
}

/**
 * A redirect must stay on http(s), and may use plain HTTP only to a host allowed it (loopback or marked
 * insecure): otherwise a registry, or anyone rewriting its answers, could move blob or token traffic off TLS.
 */
export function checkRedirectTarget(from: string, to: URL, allowPlainHttp: (host: string) => boolean): void {
  if (to.protocol === 'https:') return;
  const where = `${redactUrl(from)} redirects to ${redactUrl(to.toString())}`;
  if (to.protocol !== 'http:') throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${where}: not an http(s) URL`);
  if (!allowPlainHttp(to.host)) {
    throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${where}: refusing to follow a redirect to plain HTTP`, {
      hint: `Plain HTTP is used only for loopback hosts and hosts marked insecure (--insecure-registry ${to.host} or VMIMG_INSECURE_REGISTRIES).`,
      details: { retryable: false },
    });
  }
}

function redirected(req: HttpRequest, to: URL, status: number): HttpRequest {
  const from = new URL(req.url);
  const headers: Record<string, string> = { ...req.headers };
  if (from.origin !== to.origin) {
    for (const name of Object.keys(headers)) if (name.toLowerCase() === 'authorization') delete headers[name];
  }
  const toGet = status === 303 && req.method !== 'GET' && req.method !== 'HEAD';
  if (!toGet && req.body !== undefined && typeof req.body !== 'string' && !(req.body instanceof Uint8Array)) {
    throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${redactUrl(req.url)} redirects a streamed ${req.method}; its body cannot be sent twice`);
  }
  return {
    url: to.toString(),
    method: toGet ? 'GET' : req.method,
    headers,
    ...(req.body !== undefined && !toGet ? { body: req.body } : {}),
    ...(req.signal !== undefined ? { signal: req.signal } : {}),
    ...(req.direct === true ? { direct: true } : {}),
    ...(req.idleTimeoutMs !== undefined ? { idleTimeoutMs: req.idleTimeoutMs } : {}),
  };
}
