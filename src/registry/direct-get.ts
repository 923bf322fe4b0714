/**
 * A GET whose body the kernel reads straight into 1 MiB blocks (net.Socket's `onread`), for large blob
 * bodies. Through undici a 95 MB blob arrives as ~1 450 fresh 64 KiB socket buffers, each copied into
 * llhttp's wasm memory and passed through a Readable and an async iterator: 360-510 ms of CPU in a fresh
 * process (most of it TurboFan compiling that path on V8's helper threads), where reading it into blocks
 * took 33-46 ms (same blob, loopback, fresh processes). Consumers then handle ~100 chunks, not ~1 450.
 *
 * One request per connection (`Connection: close`): meant for bodies large enough that a connect (and a
 * TLS handshake) is small beside them. The answer has the shape of Transport's (status, headers, body);
 * the body is an object-mode Readable of Buffers (views of the blocks, never reused: each block is
 * fresh, so a consumer may keep a chunk as long as it likes) whose errors are already coded
 * (networkError). Bodies framed by Content-Length, chunked, or the connection's end are understood.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { networkError, redactUrl } from './http-errors.js';
import { chunkedDecoder, parseHead, type ParsedHead } from './direct-head.js';

/** Bytes per block the kernel reads into. */
export const BLOCK_BYTES = 1 << 20;
/** A block with less room than this left is handed on and a new one started. */
const MIN_READ = 64 * 1024;
/** Bytes read but not yet handed on go out after this long (a slow body still flows). */
const FLUSH_MS = 5;
/** Chunks queued before the socket pauses. */
const QUEUED = 4;
/** Largest response head taken. */
const MAX_HEAD_BYTES = 64 * 1024;

/** Connection settings (Transport's AgentOptions). */
export interface DirectOptions {
  readonly idleTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly tls?: { readonly ca?: string | Buffer; readonly rejectUnauthorized?: boolean };
}

/** The answer: status, lower-cased headers, and the body (see the module comment). */
export interface DirectResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly body: DirectBody;
}

/** GETs `url` with `headers`; resolves once the head arrived. Failures are coded (ERR_NETWORK / ERR_ABORTED). */
export function directGet(url: string, headers: Readonly<Record<string, string>>, signal: AbortSignal | undefined, options: DirectOptions = {}): Promise<DirectResponse> {
  const u = new URL(url);
  for (const [k, v] of Object.entries(headers)) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) return Promise.reject(new VmimgError(ErrorCode.INVALID_ARGUMENT, `header ${JSON.stringify(k)} has a line break`));
  }
  const lines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `host: ${u.host}`, 'connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return new Promise<DirectResponse>((resolve, reject) => {
    const body = new DirectBody(url, signal);
    body.onHead = (head) => resolve({ status: head.status, headers: head.headers, body });
    body.onEarlyError = reject;
    body.start(u, `${lines.join('\r\n')}\r\n\r\n`, options);
  });
}

/** The body of a direct GET, fed by the socket's reads (objectMode: one Buffer per chunk, never concatenated). */
export class DirectBody extends Readable {
  onHead?: (head: ParsedHead) => void;
  onEarlyError?: (err: unknown) => void;
  private socket: Socket | undefined;
  private block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
  /** Bytes of `block` filled; `sent`: of those, handed on (or part of the head). */
  private used = 0;
  private sent = 0;
  private head: Buffer | undefined = Buffer.alloc(0);
  /** Body bytes still expected (Content-Length), or undefined (chunked, or to the connection's end). */
  private left: number | undefined;
  private chunked: ReturnType<typeof chunkedDecoder> | undefined;
  private paused = false;
  /** Chunks read but not yet taken; the consumer asked and nothing was there (`wanting`). */
  private readonly queue: Buffer[] = [];
  private wanting = false;
  private complete = false;
  private failure: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  private idleMs = 30_000;
  /** An abort ends the body at once (queued chunks are dropped), or fails the request still waiting for its head. */
  private readonly onAbort = (): void => {
    const coded = networkError(Object.assign(new Error('aborted'), { name: 'AbortError' }), this.url, this.signal);
    if (this.head !== undefined) this.onEarlyError?.(coded);
    this.destroy(coded);
  };

  constructor(
    private readonly url: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    super({ objectMode: true, highWaterMark: 1 }); // chunks wait in `queue`, so a failure can come after them
    // the socket's end or error can come in the same I/O turn as the head, before the caller has a
    // listener; the error stays in `errored`, and a later iteration or finished() still sees it
    this.on('error', () => undefined);
  }

  /** Connects and sends `request`. */
  start(u: URL, request: string, options: DirectOptions): void {
    if (this.signal?.aborted) return this.onAbort();
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const onread = { buffer: () => this.room(), callback: (n: number) => this.received(n) };
    const socket = u.protocol === 'https:'
      ? tlsConnect({ host, port, onread, ALPNProtocols: ['http/1.1'], ...(isIP(host) === 0 ? { servername: host } : {}), ...(options.tls ?? {}) } as ConnectionOptions) // tls takes onread too (typings lack it)
      : netConnect({ host, port, onread });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setTimeout(options.connectTimeoutMs ?? 15_000, () => this.fail(timeout(this.head !== undefined ? 'UND_ERR_HEADERS_TIMEOUT' : 'UND_ERR_BODY_TIMEOUT')));
    this.idleMs = options.idleTimeoutMs ?? 30_000;
    socket.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => socket.setTimeout(this.paused ? 0 : this.idleMs));
    socket.on('error', (err) => this.fail(err));
    socket.on('end', () => this.ended());
    socket.on('close', () => this.ended());
    socket.write(request);
  }

  /** undici's body has it; here a connection is never reused, so dropping it is enough. */
  async dump(_options?: { limit?: number }): Promise<void> {
    this.destroy();
  }

  /** The consumer wants a chunk: the oldest queued one, else the end or the failure, else the next read. */
  override _read(): void {
    const next = this.queue.shift();
    if (next !== undefined) {
      this.push(next);
      if (this.paused && this.queue.length < QUEUED / 2) this.resumeSocket();
    } else if (this.failure !== undefined) {
      this.destroy(this.failure); // only now: every byte that came before it went out first
    } else if (this.complete) {
      this.push(null);
    } else {
      this.wanting = true;
      this.resumeSocket();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.socket?.destroy();
    cb(err);
  }

  private resumeSocket(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket?.setTimeout(this.idleMs);
    this.socket?.resume();
  }

  /** Where the next read goes: the rest of the block, or a fresh block once little room is left. */
  private room(): Buffer {
    if (BLOCK_BYTES - this.used < MIN_READ) {
      this.flush();
      this.block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
      this.used = 0;
      this.sent = 0;
    }
    return this.block.subarray(this.used);
  }

  /** `n` bytes landed at `used`; returns false to pause the socket (the consumer is behind). */
  private received(n: number): boolean {
    const from = this.used;
    this.used += n;
    if (this.head !== undefined && !this.takeHead(from)) return true;
    if (this.chunked !== undefined) {
      try {
        for (const piece of this.chunked.feed(this.block.subarray(this.sent, this.used))) this.emit1(piece);
      } catch (err) {
        this.fail(err);
        return false;
      }
      this.sent = this.used;
      if (this.chunked.done) this.finish();
    } else if (this.left !== undefined && this.used - this.sent >= this.left) {
      this.used = this.sent + this.left; // anything past the body is not ours
      this.finish();
    } else {
      this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
    }
    return true;
  }

  /** Collects the head; once whole, parses it and positions `sent` at the body's first byte. */
  private takeHead(from: number): boolean {
    const piece = this.block.subarray(from, this.used);
    let seen = Buffer.concat([this.head!, piece]);
    let end = seen.indexOf('\r\n\r\n');
    // an interim answer (1xx) comes before the real one: skip it
    while (end >= 0 && /^HTTP\/1\.[01] 1\d\d/.test(seen.toString('latin1', 0, 13))) {
      seen = seen.subarray(end + 4);
      end = seen.indexOf('\r\n\r\n');
    }
    if ((end < 0 ? seen.length : end) > MAX_HEAD_BYTES) {
      this.fail(new VmimgError(ErrorCode.REGISTRY_ERROR, `malformed HTTP answer from ${redactUrl(this.url)}: a head over ${MAX_HEAD_BYTES} bytes`));
      return false;
    }
    if (end < 0) {
      this.head = seen;
      this.sent = this.used;
      return false;
    }
    let head: ParsedHead;
    try {
      head = parseHead(seen.subarray(0, end).toString('latin1'));
    } catch (err) {
      this.fail(err);
      return false;
    }
    this.head = undefined;
    this.sent = this.used - (seen.length - end - 4);
    if (head.chunked) this.chunked = chunkedDecoder();
    else this.left = head.length;
    this.onHead?.(head);
    if (this.left === 0) this.finish();
    return this.left !== 0;
  }

  /** Hands on the bytes read since the last hand-over, as one view. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.used <= this.sent || this.head !== undefined || this.chunked !== undefined) return;
    const view = this.block.subarray(this.sent, this.used);
    this.sent = this.used;
    if (this.left !== undefined) this.left -= view.length;
    this.emit1(view);
  }

  /** Hands `chunk` to a waiting consumer, or queues it (the socket pauses while QUEUED chunks wait). */
  private emit1(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.wanting) {
      this.wanting = false;
      this.push(chunk);
      return;
    }
    this.queue.push(chunk);
    if (this.queue.length < QUEUED || this.paused) return;
    this.paused = true;
    this.socket?.setTimeout(0); // a consumer holding the body back is not the server stalling
    this.socket?.pause();
  }

  /** The whole body is in: hand on the rest, end, and let the connection go. */
  private finish(): void {
    this.flush();
    this.left = 0;
    this.complete = true;
    if (this.wanting && this.queue.length === 0) this.push(null);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.socket?.destroy();
  }

  /** The connection ended: a body framed by its end is complete, any other is cut short. */
  private ended(): void {
    if (this.destroyed || this.readableEnded || this.left === 0) return;
    if (this.head === undefined && this.left === undefined && this.chunked === undefined) return this.finish();
    this.fail(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
  }

  /**
   * Ends the body with `err` after the bytes that arrived before it (a reset in the same I/O turn as
   * the head and 300 KB of body still delivers the 300 KB, so a resume starts after them).
   */
  private fail(err: unknown): void {
    if (this.destroyed || this.failure !== undefined || this.complete) return;
    const coded = networkError(err, this.url, this.signal);
    this.socket?.destroy();
    if (this.head !== undefined) {
      this.onEarlyError?.(coded);
      return void this.destroy();
    }
    this.flush();
    this.failure = coded;
    if (this.wanting && this.queue.length === 0) this.destroy(coded);
  }
}

function timeout(code: string): Error {
  return Object.assign(new Error(code === 'UND_ERR_HEADERS_TIMEOUT' ? 'Headers Timeout Error' : 'Body Timeout Error'), { code });
}
