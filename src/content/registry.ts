/**
 * A registry repository as a BlobReader. The reference it is made for is its one root; manifests and
 * indexes come from `/manifests/<digest>` (with the manifest Accept list), other blobs from
 * `/blobs/<digest>`. Small reads are retried under the client's one policy; `openRange` makes one
 * attempt, for the store's resumable fetch (src/store/fetch.ts) which resumes, retries and verifies.
 */
import { Readable, Transform } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { isIndexMediaType, isManifestMediaType, type Descriptor } from '../manifest/index.js';
import { formatReference } from '../reference/index.js';
import type { Reference } from '../reference/types.js';
import type { OpenedBlob, RegistryClient } from '../registry/client.js';
import { DIRECT_MIN_BYTES } from '../registry/direct-get.js';
import type { RetryPolicy } from '../util/retry.js';
import type { ThroughputRule } from '../util/throughput.js';
import type { NamedDescriptor, OpenBlobOptions, ReadOptions, RemoteBlobReader } from './blob-reader.js';

export class RegistryBlobReader implements RemoteBlobReader {
  readonly kind = 'registry' as const;
  readonly where: string;
  readonly retryPolicy: RetryPolicy;
  readonly throughputRule: ThroughputRule;
  /** Manifests fetched by tag while resolving: read again by digest without a second request. */
  private readonly fetched = new Map<string, Buffer>();

  /** `ref` names the root (tag or digest); the client is the caller's to close. */
  constructor(
    private readonly client: RegistryClient,
    readonly ref: Reference,
  ) {
    this.where = formatReference(ref);
    this.retryPolicy = client.retryPolicy;
    this.throughputRule = client.throughputRule;
  }

  /** The reference's manifest or index (one GET; its bytes are kept for the walk). */
  async roots(options: ReadOptions = {}): Promise<NamedDescriptor[]> {
    const m = await this.client.fetchManifest(this.ref, calls(options));
    this.fetched.set(m.digest, m.bytes);
    return [{ descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.size }, names: [this.where] }];
  }

  async readBytes(desc: Descriptor, maxBytes: number, options: ReadOptions = {}): Promise<Buffer> {
    const what = `${this.where}: ${desc.digest}`;
    if (desc.size > maxBytes) throw new VmimgError(ErrorCode.TOO_LARGE, `${what} is ${desc.size} bytes, over the ${maxBytes}-byte limit`);
    const known = this.fetched.get(desc.digest);
    if (known !== undefined) return checkSize(known, desc, what);
    if (!isManifestMediaType(desc.mediaType) && !isIndexMediaType(desc.mediaType)) {
      return this.client.fetchBlobBytes(this.ref, desc, { ...calls(options), maxBytes });
    }
    const m = await this.client.fetchManifest({ registry: this.ref.registry, repository: this.ref.repository, digest: desc.digest }, calls(options));
    return checkSize(m.bytes, desc, what);
  }

  /** One GET (mirrors, then the origin) for the range; bytes before `offset` a server sends anyway are skipped. */
  async open(desc: Descriptor, options: OpenBlobOptions = {}): Promise<Readable> {
    const offset = options.offset ?? 0;
    const opened = await this.client.openBlob(this.ref, desc, { ...calls(options), offset, ...(options.length !== undefined ? { length: options.length } : {}) });
    return slice(opened, offset, options.length);
  }

  /**
   * A large rest (DIRECT_MIN_BYTES or more) is read on a connection of its own into 1 MiB blocks
   * (registry/direct-get.ts): undici's ~1 450 socket buffers, wasm copy and stream stages for the
   * bench's 95 MB layer cost the pull ~0.3 CPU-s (issue 13).
   */
  async openRange(desc: Descriptor, offset: number, options: ReadOptions = {}): Promise<OpenedBlob> {
    const direct = desc.size - offset >= DIRECT_MIN_BYTES;
    return this.client.openBlob(this.ref, desc, { ...calls(options), offset, ...(direct ? { direct } : {}) });
  }

  async close(): Promise<void> {}
}

function calls(options: ReadOptions): { signal?: AbortSignal; onNotice?: NonNullable<ReadOptions['onNotice']> } {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(options.onNotice ? { onNotice: options.onNotice } : {}) };
}

function checkSize(bytes: Buffer, desc: Descriptor, what: string): Buffer {
  if (bytes.length !== desc.size) throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what} is ${bytes.length} bytes, its descriptor says ${desc.size}`);
  return bytes;
}

/** The asked range of a body that may start earlier (a 200 to a Range request) or run longer. */
function slice(opened: OpenedBlob, offset: number, length: number | undefined): Readable {
  let skip = offset - opened.offset;
  let left = length ?? Infinity;
  let done = false;
  if (skip === 0 && length === undefined) return opened.stream;
  const cut = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (done) return cb();
      let part = chunk;
      if (skip > 0) {
        const n = Math.min(skip, part.length);
        skip -= n;
        part = part.subarray(n);
      }
      if (part.length > left) part = part.subarray(0, left);
      left -= part.length;
      if (part.length > 0) this.push(part);
      if (left === 0 && !done) {
        done = true; // the rest (a server that sent more than asked) is not wanted
        this.push(null);
        opened.stream.destroy();
      }
      cb();
    },
  });
  opened.stream.on('error', (err) => done || cut.destroy(err));
  return opened.stream.pipe(cut);
}
