/**
 * Writing to a registry, per the OCI distribution spec: HEAD before upload, cross-repository mount
 * (`POST ?mount=&from=`), uploads (POST, then one PUT with the body; or PATCH chunks with
 * Content-Range, then PUT `?digest=`), manifest PUT by tag or digest. What is written is verified: the
 * bytes sent are hashed and must match the descriptor before the closing PUT completes (unless the
 * source verified them when it stored them: `verified`), and the registry's Docker-Content-Digest must
 * name the same digest. Retries: one RetryBudget per blob or
 * manifest; a chunked upload resumes from the offset the registry confirms (GET on its Location), in
 * the same run or, with an UploadJournal, the next one (the prefix the registry holds is hashed again
 * from the source, not sent).
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
  /**
   * The source checked these bytes against the digest when it stored them (the local store): they are
   * not hashed again. The registry still checks `?digest=` on the closing PUT (the distribution spec's
   * rule: DIGEST_INVALID), so bytes changed on disk since are refused, by the registry instead of us.
   */
  readonly verified?: boolean;
}

/**
 * Where upload sessions are remembered between processes, by blob digest (one journal per repository):
 * the session's URL and the offset the registry confirmed. Failures to read or write it only cost the
 * resume, never the upload.
 */
export interface UploadJournal {
  get(digest: string): Promise<UploadSession | undefined>;
  set(digest: string, session: UploadSession): Promise<void>;
  delete(digest: string): Promise<void>;
}

export interface UploadSession {
  /** The upload's absolute URL as the registry last named it. */
  readonly location: string;
  /** Bytes the registry confirmed. */
  readonly offset: number;
}

/** Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size (default 64 MiB). */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;

/** Ingests blobs and manifests into one repository of one registry (a PushSession). */
export class BlobUploader {
  constructor(
    private readonly session: PushSession,
    /** Chunk size for PATCH uploads; blobs no larger go monolithically. */
    private readonly chunkBytes = DEFAULT_CHUNK_BYTES,
    /** Chunked upload sessions kept for a later process (none: a rerun starts a blob over). */
    private readonly journal?: UploadJournal,
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
    const saved = await this.savedSession(desc.digest);
    const state: UploadState = { location: saved?.location, offset: saved?.offset ?? 0, hash: options.verified ? undefined : createHash(digestAlgorithm(desc.digest)), hashed: 0 };
    await this.retried(`upload of ${this.what(desc)}`, options.signal, options.onNotice, async (budget) => {
      await this.resumeOrStart(desc, open, state, options.signal);
      while (true) {
        const before = state.offset;
        const done = await this.sendPart(desc, open, state, options.signal);
        if (state.offset > before) {
          budget.progressed();
          options.onProgress?.(state.offset);
        }
        if (done) {
          await this.journal?.delete(desc.digest).catch(() => undefined);
          return;
        }
        await this.journal?.set(desc.digest, { location: state.location!, offset: state.offset }).catch(() => undefined);
      }
    });
  }

  /** A session an earlier process left for this blob, on this registry's own origin (credentials go nowhere else). */
  private async savedSession(digest: string): Promise<UploadSession | undefined> {
    const saved = await this.journal?.get(digest).catch(() => undefined);
    if (saved === undefined) return undefined;
    const same = URL.canParse(saved.location) && new URL(saved.location).origin === new URL(this.session.url('/v2/')).origin;
    return same && Number.isSafeInteger(saved.offset) && saved.offset > 0 ? saved : undefined;
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

  /**
   * A fresh POST, or (after a failure, or a session an earlier process left) the offset the registry
   * holds for our upload; a prefix our hash does not cover yet is hashed from the source.
   */
  private async resumeOrStart(desc: Descriptor, open: BlobOpener, state: UploadState, signal?: AbortSignal): Promise<void> {
    if (state.location !== undefined && state.offset > 0) {
      const req: PushRequest = { what: `upload status of ${this.what(desc)}`, method: 'GET', path: state.location, signal };
      const res = await this.session.send(req);
      await discard(res);
      const end = confirmedEnd(res);
      if (res.status === 204 && end > 0 && end < desc.size) {
        if (header(res, 'location') !== undefined) state.location = requireLocation(res, req.what);
        if (end !== state.hashed && state.hash !== undefined) state.hash = await hashPrefix(open, end, desc.digest, this.what(desc));
        state.offset = state.hashed = end;
        return;
      }
    }
    // No upload to continue (first attempt, lost or expired session): start over.
    if (state.location !== undefined) await this.cancel(state.location, signal).catch(() => undefined);
    await this.journal?.delete(desc.digest).catch(() => undefined);
    state.offset = state.hashed = 0;
    if (state.hash !== undefined) state.hash = createHash(digestAlgorithm(desc.digest));
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
    const hash = state.hash?.copy();
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
    state.offset = state.hashed = end;
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
  /** Hash of the first `hashed` bytes (equal to `offset` except while resuming another process's session); none for verified sources. */
  hash: Hash | undefined;
  hashed: number;
}

/** The hash of the blob's first `length` bytes, read from the source (the part a registry already holds). */
async function hashPrefix(open: BlobOpener, length: number, digest: string, what: string): Promise<Hash> {
  const hash = createHash(digestAlgorithm(digest));
  for await (const _ of hashed(await open(0), length, hash, undefined, what));
  return hash;
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
function hashed(source: Readable, length: number, hash: Hash | undefined, digest: string | undefined, what: string): Readable {
  let left = length;
  const cut = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (left <= 0) return done();
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      left -= part.length;
      hash?.update(part);
      done(null, part);
      if (left === 0) source.unpipe(cut), source.destroy(), cut.end();
    },
    flush(done) {
      if (left > 0) return done(new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what}: source ended ${left} bytes early`));
      if (digest !== undefined && hash !== undefined) {
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
