/**
 * RegistryClient: the distribution API (ping, resolve, manifests, blobs) over one undici Agent, going
 * through mirrors then the origin, with retry → auth → redirect steps underneath (call.ts). Retries follow one
 * RetryBudget per call (util/retry.ts); blobs are only opened here, one attempt per range: the store's
 * fetch (store/fetch.ts) resumes, verifies and retries them.
 */
import type { Agent } from 'undici';
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { digestAlgorithm, digestOf, validateDigest } from '../digest/index.js';
import type { Descriptor } from '../manifest/types.js';
import type { Reference } from '../reference/types.js';
import { Authorizer } from './auth.js';
import { StepCaller } from './call.js';
import { credentialChain, type CredentialOptions } from './credentials.js';
import { plainHttpPolicy, registryEndpoints, type HostOptions, type RegistryEndpoint } from './hosts.js';
import { redactUrl, statusError } from './http-errors.js';
import { checkDigest, describe, manifestTarget, mediaTypeOf, rangeStart, sniffMediaType, type Step } from './responses.js';
import { parseWWWAuthenticate } from './challenge.js';
import { DEFAULT_MANIFEST_ACCEPT, readCapped } from './limits.js';
import { documentLimits } from '../manifest/limits.js';
import { DEFAULT_IDLE_TIMEOUT_MS, Transport, createAgent, discard, header, readSmallText, type HttpResponse } from './transport.js';
import { DEFAULT_RETRY_POLICY, hostOf, type NoticeListener, type RetryPolicy } from '../util/retry.js';
import { DEFAULT_THROUGHPUT, type ThroughputRule } from '../util/throughput.js';
import { codedErrors, guardedBody } from './bodies.js';
import { DirectBody } from './direct-get.js';

export interface RegistryClientOptions extends HostOptions, CredentialOptions {
  /** Attempts, backoff and time budget per operation (defaults in util/retry.ts). */
  readonly retry?: Partial<RetryPolicy>;
  /** Minimum body rate and stall notice (defaults in util/throughput.ts); blobs get it from the store. */
  readonly throughput?: Partial<ThroughputRule>;
  /** Retry waits and stalls of calls that name no listener of their own. */
  readonly onNotice?: NoticeListener;
  /** Idle (stall) timeout: longest wait for headers or between body chunks (default 30 s). */
  readonly idleTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Connections per origin (default 6). */
  readonly connections?: number;
  readonly userAgent?: string;
  /** Cap for manifests and configs (default documentLimits().maxManifestBytes, 4 MiB): larger ones are refused, never truncated. */
  readonly maxManifestBytes?: number;
  /** Accept header for manifests (default: OCI and Docker v2 manifests and indexes). */
  readonly manifestAccept?: readonly string[];
  /** TLS options for undici's connector (a private CA, for instance). */
  readonly tls?: { readonly ca?: string | Buffer; readonly rejectUnauthorized?: boolean };
  /** Clock for token expiry (default Date.now); tests move it forward. */
  readonly now?: () => number;
}

export type RepositoryRef = Pick<Reference, 'registry' | 'repository'>;

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Retry waits and stalls of this call (default: the client's `onNotice`). */
  readonly onNotice?: NoticeListener;
  /**
   * This call's retry policy over the client's: an optional request whose caller has a fallback gives it
   * a smaller budget (the lazy index lookup: src/lazy/lookup.ts).
   */
  readonly retry?: Partial<RetryPolicy>;
  /**
   * This call's wait for headers and between body chunks (ms) instead of the client's `idleTimeoutMs`
   * (30 s): an optional request gives up on a hang sooner (the lazy index lookup).
   */
  readonly idleTimeoutMs?: number;
}

/** One response body for a blob range (see openBlob). */
export interface OpenedBlob {
  readonly stream: Readable;
  /** Where the stream starts in the blob: the asked-for offset on 206, 0 when the server sent it all. */
  readonly offset: number;
  /** The host that answered (after redirects), for messages. */
  readonly from: string;
  /** Body bytes the answer announced (Content-Length), when it did. */
  readonly length?: number;
}

/** A small API answer (tags/list, referrers): its bytes and the headers a proxy passes on. */
export interface ApiAnswer {
  readonly bytes: Buffer;
  readonly contentType?: string;
  /** The `Link` header (pagination of tags/list and referrers). */
  readonly link?: string;
}

export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface BlobReadOptions extends CallOptions {
  /** Start from this byte (Range request). */
  readonly offset?: number;
  /** Ask for this many bytes from `offset` (a closed Range); the server may still send more, or all. */
  readonly length?: number;
  /**
   * Read the body on a connection of its own into 1 MiB blocks (direct-get.ts): ~3x less CPU than
   * undici's stream for a large blob; its chunks are never reused, so a consumer may keep them.
   */
  readonly direct?: boolean;
}

export interface PingResult {
  readonly url: string;
  readonly status: number;
  /** Auth schemes the registry challenged with (`bearer`, `basic`), empty when open. */
  readonly authSchemes: readonly string[];
}

export class RegistryClient {
  private readonly agent: Agent;
  private readonly transport: Transport;
  private readonly steps: StepCaller;
  /** The retry policy and throughput rule in force, for the store's fetch of blobs this client opens. */
  readonly retryPolicy: RetryPolicy;
  readonly throughputRule: ThroughputRule;
  /** The longest wait for headers or between body chunks of this client's requests (ms; default 30 s). */
  readonly idleTimeoutMs: number;
  private readonly maxManifestBytes: number;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.agent = createAgent(options);
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.throughputRule = { ...DEFAULT_THROUGHPUT, ...options.throughput };
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.transport = new Transport(this.agent, options.userAgent ?? 'vmimg/0.1', plainHttpPolicy(options), {
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
    });
    const credentials = credentialChain(options);
    const authorizer = new Authorizer({
      transport: this.transport,
      credentials,
      ...(options.now !== undefined ? { now: options.now } : {}),
    });
    this.steps = new StepCaller({
      transport: this.transport,
      authorizer,
      endpoints: (registry) => this.endpoints(registry),
      retryPolicy: this.retryPolicy,
      throughputRule: this.throughputRule,
      onNotice: options.onNotice,
      helpersRunning: credentials.running ?? (() => []),
    });
    this.maxManifestBytes = options.maxManifestBytes ?? documentLimits().maxManifestBytes;
  }

  /** The endpoints tried for a registry, mirrors first. */
  endpoints(registry: string): RegistryEndpoint[] {
    return registryEndpoints(registry, this.options);
  }

  /** GET /v2/ on the origin: reachable, and which auth it wants. */
  async ping(registry: string, options: CallOptions = {}): Promise<PingResult> {
    const endpoint = this.endpoints(registry).find((e) => !e.mirror) ?? this.endpoints(registry)[0]!;
    const url = `${endpoint.url}/v2/`;
    const res = await this.transport.send({ url, method: 'GET', signal: options.signal });
    const challenge = res.headers['www-authenticate'];
    const text = await readSmallText(res.body);
    if (res.status !== 200 && res.status !== 401) throw statusError({ what: `registry ${registry}`, url, status: res.status, body: text, registry });
    return { url, status: res.status, authSchemes: parseWWWAuthenticate(challenge).map((c) => c.scheme) };
  }

  /** Tag or digest → descriptor of the manifest/index (HEAD, else GET and hash). */
  async resolve(ref: Reference, options: CallOptions = {}): Promise<Descriptor> {
    const target = manifestTarget(ref);
    const head = await this.steps.call<Descriptor | undefined>(
      { ...this.manifestStep(ref, target, 'HEAD'), ...callParts(options) },
      async (res) => {
        await discard(res);
        const digest = header(res, 'docker-content-digest');
        const mediaType = mediaTypeOf(res);
        const size = Number(header(res, 'content-length'));
        if (digest === undefined || mediaType === undefined || !Number.isSafeInteger(size)) return undefined;
        if (ref.digest !== undefined && digest !== ref.digest) return undefined; // let GET verify
        return { mediaType, digest: validateDigest(digest), size };
      },
    );
    if (head !== undefined) return head;
    const m = await this.fetchManifest(ref, options);
    return { mediaType: m.mediaType, digest: m.digest, size: m.size };
  }

  /** A manifest or index, capped in size; verified when fetched by digest, digest recorded when by tag. */
  async fetchManifest(ref: Reference, options: CallOptions = {}): Promise<FetchedManifest> {
    const target = manifestTarget(ref);
    return this.steps.call({ ...this.manifestStep(ref, target, 'GET'), ...callParts(options) }, async (res) => {
      const what = `manifest ${describe(ref)}`;
      const bytes = await this.readBody(res, what, this.maxManifestBytes, options);
      const mediaType = mediaTypeOf(res) ?? sniffMediaType(bytes) ?? 'application/octet-stream';
      let digest: string;
      if (ref.digest !== undefined) {
        digest = ref.digest;
        checkDigest(what, ref.digest, digestOf(bytes, digestAlgorithm(ref.digest)));
      } else {
        digest = digestOf(bytes);
        const claimed = header(res, 'docker-content-digest');
        if (claimed !== undefined && claimed.startsWith('sha256:')) checkDigest(what, claimed, digest);
      }
      return { bytes, mediaType, digest, size: bytes.length };
    });
  }

  /**
   * One response for a blob from `offset` on, in one attempt (mirrors, then the origin); the caller
   * verifies, resumes and retries — the store's fetch does all three. Honours 206 vs 200.
   */
  async openBlob(repo: RepositoryRef, desc: Descriptor, options: BlobReadOptions = {}): Promise<OpenedBlob> {
    const offset = options.offset ?? 0;
    const last = options.length !== undefined ? String(offset + options.length - 1) : '';
    validateDigest(desc.digest);
    const step: Step = {
      repo,
      what: `blob ${desc.digest} in ${repo.registry}/${repo.repository}`,
      path: `/v2/${repo.repository}/blobs/${desc.digest}`,
      method: 'GET',
      headers: offset > 0 || last !== '' ? { range: `bytes=${offset}-${last}` } : {},
      capability: 'pull',
      ...callParts(options),
      once: true,
      ...(options.direct === true ? { direct: true } : {}),
    };
    return this.steps.call(step, async (res) => {
      const start = res.status === 206 ? rangeStart(header(res, 'content-range')) : 0;
      if (res.status === 206 && start !== offset) {
        res.body.on('error', () => undefined).destroy(); // undici emits UND_ERR_ABORTED: nobody else listens yet
        throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${step.what}: asked for bytes from ${offset}, got a range from ${start}`);
      }
      const length = Number(header(res, 'content-length') ?? NaN);
      if (Number.isSafeInteger(length) && start + length > desc.size) {
        res.body.on('error', () => undefined).destroy(); // undici emits UND_ERR_ABORTED: nobody else listens yet
        throw new VmimgError(ErrorCode.TOO_LARGE, `${step.what}: server sends ${start + length} bytes, descriptor says ${desc.size}`);
      }
      const stream = res.body instanceof DirectBody ? res.body : codedErrors(res.body, res.url, options.signal); // direct: coded already
      return { stream, offset: start, from: hostOf(res.url), ...(Number.isSafeInteger(length) ? { length } : {}) };
    });
  }

  /**
   * A small blob (an image config) in memory, verified; over the cap is refused up front or while
   * reading. Small enough to fetch whole again on a retry, so no resume.
   */
  async fetchBlobBytes(repo: RepositoryRef, desc: Descriptor, options: CallOptions & { maxBytes?: number } = {}): Promise<Buffer> {
    const what = `blob ${desc.digest}`;
    const cap = options.maxBytes ?? this.maxManifestBytes;
    if (desc.size > cap) {
      throw new VmimgError(ErrorCode.TOO_LARGE, `${what}: ${desc.size} bytes is over the ${cap}-byte limit`);
    }
    validateDigest(desc.digest);
    const step: Step = {
      repo,
      what: `${what} in ${repo.registry}/${repo.repository}`,
      path: `/v2/${repo.repository}/blobs/${desc.digest}`,
      method: 'GET',
      capability: 'pull',
      ...callParts(options),
    };
    return this.steps.call(step, async (res) => {
      const bytes = await this.readBody(res, what, desc.size, options);
      if (bytes.length !== desc.size) {
        throw new VmimgError(ErrorCode.NETWORK, `${what}: body ended after ${bytes.length} of ${desc.size} bytes`, { details: { retryable: true, url: redactUrl(res.url) } });
      }
      checkDigest(what, desc.digest, digestOf(bytes, digestAlgorithm(desc.digest)));
      return bytes;
    });
  }

  /**
   * GET of a small API path under the repository (`tags/list?n=10`, `referrers/<digest>`), capped at
   * `maxBytes` (default: the manifest cap); a non-2xx answer is the usual coded error (404 → ERR_NOT_FOUND).
   */
  async fetchApi(repo: RepositoryRef, pathAndQuery: string, options: CallOptions & { accept?: string; maxBytes?: number } = {}): Promise<ApiAnswer> {
    const what = `${pathAndQuery.replace(/\?.*$/, '')} of ${repo.registry}/${repo.repository}`;
    const step: Step = {
      repo,
      what,
      path: `/v2/${repo.repository}/${pathAndQuery}`,
      method: 'GET',
      headers: options.accept !== undefined ? { accept: options.accept } : {},
      capability: 'resolve',
      ...callParts(options),
    };
    return this.steps.call(step, async (res) => {
      const bytes = await this.readBody(res, what, options.maxBytes ?? this.maxManifestBytes, options);
      const contentType = header(res, 'content-type');
      const link = header(res, 'link');
      return { bytes, ...(contentType !== undefined ? { contentType } : {}), ...(link !== undefined ? { link } : {}) };
    });
  }

  /** A small answer's body, read under the throughput rule and refused over `cap` bytes. */
  private readBody(res: HttpResponse, what: string, cap: number, options: CallOptions): Promise<Buffer> {
    return readCapped(guardedBody(res, what, this.throughputRule, options.onNotice ?? this.options.onNotice, options.signal), cap, what);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private manifestStep(ref: Reference, target: string, method: 'GET' | 'HEAD'): Step {
    return {
      repo: ref,
      what: `manifest ${describe(ref)}`,
      path: `/v2/${ref.repository}/manifests/${target}`,
      method,
      headers: { accept: (this.options.manifestAccept ?? DEFAULT_MANIFEST_ACCEPT).join(', ') },
      capability: ref.digest !== undefined ? 'pull' : 'resolve',
    };
  }
}

/** What a call's options add to its step. */
function callParts(options: CallOptions): Pick<Step, 'signal' | 'onNotice' | 'retry' | 'idleTimeoutMs'> {
  return {
    signal: options.signal,
    ...(options.onNotice !== undefined ? { onNotice: options.onNotice } : {}),
    ...(options.retry !== undefined ? { retry: options.retry } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
  };
}
