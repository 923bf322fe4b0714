/**
 * Writing to a registry, per the OCI distribution spec: HEAD before upload, cross-repository mount
 * (`POST ?mount=&from=`), uploads (POST, then one PUT with the body; or PATCH chunks with
 * Content-Range, then PUT `?digest=`), manifest PUT by tag or digest. What is written is verified: the
 * bytes sent are hashed and must match the descriptor before the closing PUT completes, and the
 * registry's Docker-Content-Digest must name the same digest. Retries: one RetryBudget per blob or
 * manifest; a chunked upload resumes from the offset the registry confirms (GET on its Location).
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { digestAlgorithm, digestOf, validateDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import type { Descriptor } from '../manifest/types.js';
import { RetryBudget, withRetry, type NoticeListener } from '../util/retry.js';
import { checkDigest } from './responses.js';
import { discard, header, type HttpResponse } from './transport.js';
import type { PushRequest, PushSession } from './push-session.js';

/** Opens the blob's bytes from `offset` on (a file, a store blob, another registry's range). */
export type BlobOpener = (offset: number) => Promise<Readable>;

export interface UploadOptions {
  readonly signal?: AbortSignal | undefined;
  /** Bytes confirmed by the registry so far (for progress). */
  readonly onProgress?: (sent: number) => void;
  readonly onNotice?: NoticeListener | undefined;
}

/** Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size (default 64 MiB). */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;

/** Ingests blobs and manifests into one repository of one registry (a PushSession). */
export class BlobUploader {
  constructor(
    private readonly session: PushSession,
    /** Chunk size for PATCH uploads; blobs no larger go monolithically. */
    private readonly chunkBytes = DEFAULT_CHUNK_BYTES,
  ) {}

  private get repo(): string {
    return this.session.repository;
  }

  /** HEAD: does the repository hold this blob (with the descriptor's size)? */
  async has(desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
    const req: PushRequest = { what: this.what(desc), method: 'HEAD', path: `/v2/${this.repo}/blobs/${validateDigest(desc.digest)}`, signal };
    return this.retried(req.what, signal, undefined, async () => {
      const res = await this.session.send(req);
      await discard(res);
      if (res.status === 404) return false;
      if (res.status !== 200) throw await this.session.unexpected(req, res);
      const size = Number(header(res, 'content-length'));
      return !Number.isSafeInteger(size) || size === desc.size;
    });
  }

  /**
   * Cross-repository mount from `from` (same registry). True when the registry mounted it (201 naming
   * the digest); false when it declined (it opened an upload instead, which is cancelled; or refused
   * access to `from`) — the caller then uploads.
   */
  async mount(desc: Descriptor, from: string, signal?: AbortSignal): Promise<boolean> {
    const query = new URLSearchParams({ mount: validateDigest(desc.digest), from });
    const req: PushRequest = {
      what: `mount of ${this.what(desc)} from ${from}`,
      method: 'POST',
      path: `/v2/${this.repo}/blobs/uploads/?${query}`,
      headers: { 'content-length': '0' },
      scope: `repository:${this.repo}:pull,push repository:${from}:pull`,
      signal,
    };
    return this.retried(req.what, signal, undefined, async () => {
      const res = await this.session.send(req).catch((err: unknown) => {
        // No pull access to `from` (or no such repository): decline, and let the upload decide.
        if (err instanceof VmimgError && (err.code === ErrorCode.UNAUTHORIZED || err.code === ErrorCode.NOT_FOUND)) return undefined;
        throw err;
      });
      if (res === undefined) return false;
      await discard(res);
      if (res.status === 201) {
        const got = header(res, 'docker-content-digest');
        if (got !== undefined) checkDigest(req.what, desc.digest, got);
        return true;
      }
      if (res.status === 404 || res.status === 403) return false;
      if (res.status !== 202) throw await this.session.unexpected(req, res);
      const location = header(res, 'location');
      if (location !== undefined) await this.cancel(location, signal);
      return false;
    });
  }

  /** Uploads a blob the registry lacks; resolves once it confirmed the digest. */
  async upload(desc: Descriptor, open: BlobOpener, options: UploadOptions = {}): Promise<void> {
    validateDigest(desc.digest);
    const state: UploadState = { location: undefined, offset: 0, hash: createHash(digestAlgorithm(desc.digest)) };
    await this.retried(`upload of ${this.what(desc)}`, options.signal, options.onNotice, async (budget) => {
      await this.resumeOrStart(desc, state, options.signal);
      while (true) {
        const before = state.offset;
        const done = await this.sendPart(desc, open, state, options.signal);
        if (state.offset > before) {
          budget.progressed();
          options.onProgress?.(state.offset);
        }
        if (done) return;
      }
    });
  }

  /** PUT a manifest or index under `target` (a tag, or its digest); returns the registry's digest. */
  async putManifest(target: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
    const digest = digestOf(bytes);
    const req: PushRequest = {
      what: `manifest ${this.session.registry}/${this.repo}:${target}`,
      method: 'PUT',
      path: `/v2/${this.repo}/manifests/${target}`,
      headers: { 'content-type': mediaType },
      body: () => bytes,
      signal,
    };
    return this.retried(req.what, signal, undefined, async () => {
      const res = await this.session.send(req);
      if (res.status !== 201 && res.status !== 200) throw await this.session.unexpected(req, res);
      await discard(res);
      const got = header(res, 'docker-content-digest');
      if (got !== undefined) checkDigest(req.what, digest, got);
      return digest;
    });
  }

  /** A fresh POST, or (after a failure) the offset the registry holds for our upload. */
  private async resumeOrStart(desc: Descriptor, state: UploadState, signal?: AbortSignal): Promise<void> {
    if (state.location !== undefined && state.offset > 0) {
      const req: PushRequest = { what: `upload status of ${this.what(desc)}`, method: 'GET', path: state.location, signal };
      const res = await this.session.send(req);
      await discard(res);
      const end = confirmedEnd(res);
      if (res.status === 204 && end === state.offset) {
        state.location = header(res, 'location') ?? state.location;
        return;
      }
    }
    // No upload to continue (first attempt, lost session, or a different offset): start over.
    if (state.location !== undefined) await this.cancel(state.location, signal).catch(() => undefined);
    state.offset = 0;
    state.hash = createHash(digestAlgorithm(desc.digest));
    const req: PushRequest = { what: `upload of ${this.what(desc)}`, method: 'POST', path: `/v2/${this.repo}/blobs/uploads/`, headers: { 'content-length': '0' }, signal };
    const res = await this.session.send(req);
    if (res.status !== 202) throw await this.session.unexpected(req, res);
    await discard(res);
    state.location = requireLocation(res, req.what);
  }

  /** Sends the rest in one PUT, or the next chunk by PATCH; true when the blob is complete. */
  private async sendPart(desc: Descriptor, open: BlobOpener, state: UploadState, signal?: AbortSignal): Promise<boolean> {
    const rest = desc.size - state.offset;
    const last = rest <= this.chunkBytes;
    const length = last ? rest : this.chunkBytes;
    const hash = state.hash.copy();
    const body = async () => hashed(await open(state.offset), length, hash, last ? desc.digest : undefined, this.what(desc));
    const location = new URL(this.session.url(state.location!));
    if (last) location.searchParams.set('digest', desc.digest);
    const range: Record<string, string> = length > 0 && !(last && state.offset === 0) ? { 'content-range': `${state.offset}-${state.offset + length - 1}` } : {};
    const req: PushRequest = {
      what: `upload of ${this.what(desc)}`,
      method: last ? 'PUT' : 'PATCH',
      path: location.toString(),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length), ...range },
      body,
      signal,
    };
    const res = await this.session.send(req);
    if (last ? res.status !== 201 : res.status !== 202) throw await this.session.unexpected(req, res);
    await discard(res);
    if (last) {
      const got = header(res, 'docker-content-digest');
      if (got !== undefined) checkDigest(req.what, desc.digest, got);
      state.offset = desc.size;
      return true;
    }
    const end = confirmedEnd(res);
    if (end !== state.offset + length) {
      throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${req.what}: registry confirms ${end} bytes after sending up to ${state.offset + length}`);
    }
    state.offset = end;
    state.hash = hash;
    state.location = requireLocation(res, req.what);
    return false;
  }

  private async cancel(location: string, signal?: AbortSignal): Promise<void> {
    const res = await this.session.send({ what: 'cancelling an upload', method: 'DELETE', path: location, signal });
    await discard(res);
  }

  private retried<T>(what: string, signal: AbortSignal | undefined, onNotice: NoticeListener | undefined, attempt: (budget: RetryBudget) => Promise<T>): Promise<T> {
    const budget = new RetryBudget(this.session.retryPolicy, { what, signal, onNotice });
    return withRetry(budget, () => attempt(budget));
  }

  private what(desc: Descriptor): string {
    return `blob ${desc.digest.slice(0, 19)} to ${this.session.registry}/${this.repo}`;
  }
}

interface UploadState {
  /** The upload's URL, as the registry last named it. */
  location: string | undefined;
  /** Bytes the registry has confirmed. */
  offset: number;
  /** Hash of those bytes. */
  hash: Hash;
}

function requireLocation(res: HttpResponse, what: string): string {
  const location = header(res, 'location');
  if (location === undefined) throw new VmimgError(ErrorCode.REGISTRY_ERROR, `${what}: registry answered ${res.status} without a Location`);
  return new URL(location, res.url).toString();
}

/** The end (exclusive) of the `Range: 0-N` a registry reports for an upload; 0 when it has nothing. */
function confirmedEnd(res: HttpResponse): number {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range') ?? '');
  return m === null ? 0 : Number(m[1]) + 1;
}

/**
 * Exactly `length` bytes of `source`, hashed into `hash` on the way; with `digest` (the last part) the
 * stream fails before its end unless the whole blob hashes to it, so the closing PUT never completes
 * with wrong bytes.
 */
function hashed(source: Readable, length: number, hash: Hash, digest: string | undefined, what: string): Readable {
  let left = length;
  const cut = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (left <= 0) return done();
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      left -= part.length;
      hash.update(part);
      done(null, part);
      if (left === 0) source.unpipe(cut), source.destroy(), cut.end();
    },
    flush(done) {
      if (left > 0) return done(new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what}: source ended ${left} bytes early`));
      if (digest !== undefined) {
        const actual = `${digestAlgorithm(digest)}:${hash.copy().digest('hex')}`;
        if (actual !== digest) return done(new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what}: source bytes hash to ${actual}, not ${digest}`));
      }
      done();
    },
  });
  source.on('error', (err) => cut.destroy(err));
  // The request may end early (an error answer, an abort): release the source's file or connection.
  cut.on('close', () => source.destroy());
  if (length === 0) {
    source.destroy();
    cut.end();
    return cut;
  }
  return source.pipe(cut);
}
