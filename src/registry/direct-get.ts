/**
 * A GET for a large blob body: node:http (Node's own client and its llhttp parser) on a connection of
 * its own, the body handed on in 1 MiB blocks. Through undici a 95 MB blob arrives as ~1 450 socket
 * buffers, each copied into llhttp's wasm memory and passed through a Readable and an async iterator:
 * 550-650 ms of CPU in a fresh process (most of it TurboFan compiling that path on V8's helper
 * threads); node:http with the blocks below took 180-250 ms (same blob, loopback, fresh processes at
 * load ~15). Consumers (the hash, the store's writes, serve's fan-out to every waiting client) then
 * handle ~95 chunks, not ~1 450. A hand-written HTTP/1.1 reader was ~100 ms cheaper still; it was
 * replaced by this one because framing answers from untrusted registries is a parser's job, and
 * Node's is well kept (docs/DECISIONS.md). On plain connections the kernel reads the head into one reused
 * buffer (PlainAgent) instead of a fresh 64 KiB one per read, and a Content-Length body straight into the
 * blocks once llhttp has framed the head (DirectBody's body mode); a consumer may ask for pooled blocks
 * (`usePool`): with both, a fill allocates no buffer per chunk and copies no body byte.
 *
 * One request per connection (`Connection: close`): meant for bodies large enough that a connect (and a
 * TLS handshake) is small beside them. The answer has the shape of Transport's (status, headers, body);
 * the body is an object-mode Readable of Buffers (views of blocks that are never reused, so a consumer
 * may keep a chunk as long as it likes, unless it asked for pooled blocks: `usePool`) whose errors are
 * already coded (networkError): bytes that arrived before a failure are delivered before it, so a
 * resume starts after them.
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { BlockPool } from '../util/block-pool.js';
import { networkError, redactUrl } from './http-errors.js';

/**
 * Blob bytes (left to read) from which a GET goes direct: smaller bodies stay on undici's kept-alive
 * connections, where a connect (and TLS handshake) per blob would cost more than the body. The store's
 * downloads (content/registry.ts) and serve's upstream fills (serve/upstream.ts) both use it.
 */
export const DIRECT_MIN_BYTES = 4 << 20;
/** Bytes per block the body is gathered into. */
export const BLOCK_BYTES = 1 << 20;
/** A block with less room than this left is handed on and a new one started. */
const MIN_ROOM = 64 * 1024;
/** Bytes gathered but not yet handed on go out after this long (a slow body still flows). */
const FLUSH_MS = 5;
/** Chunks queued before the response pauses. */
const QUEUED = 4;

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

/**
 * GETs `url` with `headers`; resolves once the final head arrived (interim 1xx answers are skipped).
 * Failures are coded: ERR_ABORTED, ERR_NETWORK (`details.retryable`), ERR_REGISTRY_ERROR for an answer
 * llhttp cannot frame (oversized head, conflicting lengths, not HTTP/1.x), ERR_INVALID_ARGUMENT for a
 * header value with a line break.
 */
export function directGet(url: string, headers: Readonly<Record<string, string>>, signal: AbortSignal | undefined, options: DirectOptions = {}): Promise<DirectResponse> {
  for (const [k, v] of Object.entries(headers)) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) return Promise.reject(new VmimgError(ErrorCode.INVALID_ARGUMENT, `header ${JSON.stringify(k)} has a line break`));
  }
  if (signal?.aborted === true) return Promise.reject(networkError(abortError(), url, signal));
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const send = https ? httpsRequest : httpRequest;
  const req = send(u, {
    method: 'GET',
    headers: { ...headers, connection: 'close' },
    ...(https ? { agent: false, ALPNProtocols: ['http/1.1'], ...(options.tls ?? {}) } : { agent: plainAgent() }),
  });
  return new Promise<DirectResponse>((resolve, reject) => {
    let body: DirectBody | undefined;
    const onAbort = (): void => void req.destroy(abortError());
    signal?.addEventListener('abort', onAbort, { once: true });
    const idleMs = options.idleTimeoutMs ?? 30_000;
    // the connect has its own deadline; once connected, silence longer than the idle timeout is a stall
    req.setTimeout(options.connectTimeoutMs ?? 15_000);
    req.once('socket', (socket) => socket.once(https ? 'secureConnect' : 'connect', () => req.setTimeout(idleMs)));
    req.on('timeout', () => req.destroy(timeoutError(body === undefined ? 'UND_ERR_HEADERS_TIMEOUT' : 'UND_ERR_BODY_TIMEOUT')));
    req.on('error', (err) => {
      if (body !== undefined) return body.fail(err);
      signal?.removeEventListener('abort', onAbort);
      reject(coded(err, url, signal));
    });
    // a 101 to a GET: node:http treats it as an upgrade and, with no listener, drops the socket without
    // 'response' or 'error' (the promise hung, and an abort could not end it: breaker10)
    req.on('upgrade', (res: IncomingMessage, socket: Socket) => {
      socket.destroy();
      signal?.removeEventListener('abort', onAbort);
      reject(new VmimgError(ErrorCode.REGISTRY_ERROR, `${redactUrl(url)} answered a GET with ${res.statusCode ?? '?'} ${res.statusMessage ?? ''} (a protocol switch)`.trimEnd(), { details: { url: redactUrl(url), status: res.statusCode } }));
    });
    req.on('response', (res) => {
      body = new DirectBody(res, req, url, signal, idleMs, () => signal?.removeEventListener('abort', onAbort));
      resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string | string[]>, body });
    });
    req.end();
  });
}

/** Bytes the kernel reads into at once on a plain connection (one buffer for all of them: see PlainAgent). */
const READ_BYTES = 1 << 20;

/**
 * Where a plain connection's reads go once its answer's body is read directly (DirectBody's body mode):
 * `room()` is the memory the next read lands in, `filled(n, buf)` is told a read put `n` bytes into `buf`
 * and returns false to pause the socket.
 */
interface DirectSink {
  /** Memory for the next read, or undefined for the connection's shared buffer. */
  room(): Buffer | undefined;
  filled(n: number, buf: Uint8Array): boolean;
}
const SINK = Symbol('vmimg.directSink');
type PlainSocket = Socket & { [SINK]?: DirectSink };
/** Sockets made by PlainAgent (the only ones whose reads a DirectBody can take over). */
const plainSockets = new WeakSet<Socket>();

/**
 * Plain-HTTP connections whose socket reads into memory we choose (net's `onread`) rather than a fresh
 * 64 KiB buffer per read. Until an answer's head is in, every read lands in one buffer shared by all
 * connections and is handed to node:http's parser ('data', as a socket without `onread` emits it), which
 * parses it synchronously and copies the body bytes out, so the buffer is free again when the emit
 * returns. Once llhttp has framed the head as a body of known length (DirectBody.readDirect), the reads
 * land in the body's own blocks instead and bypass the parser. TLS connections read as usual.
 */
class PlainAgent extends Agent {
  private readonly buffer = Buffer.allocUnsafeSlow(READ_BYTES);

  override createConnection(options: NetConnectOpts): Socket {
    // net asks `buffer` for the memory of the next read after each read's callback, and for the first
    // one while connect() runs, before `socket` is assigned
    let socket: PlainSocket | undefined;
    const buffer = (): Uint8Array => socket?.[SINK]?.room() ?? this.buffer;
    const callback = (n: number, buf: Uint8Array): boolean => {
      const sink = socket![SINK];
      if (sink !== undefined) return sink.filled(n, buf);
      socket!.emit('data', Buffer.from(buf.buffer, buf.byteOffset, n));
      return true; // a paused answer pauses the socket itself (node:http's readStop)
    };
    socket = connect({ ...options, onread: { buffer, callback } } as NetConnectOpts);
    plainSockets.add(socket);
    return socket;
  }
}

let plain: PlainAgent | undefined;
function plainAgent(): PlainAgent {
  return (plain ??= new PlainAgent({ keepAlive: false }));
}

/**
 * The body of a direct GET (objectMode: one Buffer per chunk, views of 1 MiB blocks).
 *
 * Body mode: when llhttp has framed a 200 or 206 answer on a plain connection as Content-Length bytes
 * (no Transfer-Encoding; it refuses conflicting lengths itself), the rest of the body is read by the
 * kernel straight into the blocks (PlainAgent's `onread`), counted against that length, and never
 * passes through node:http, which copied every body byte once more (~200 ms of main thread per 95 MB in
 * a fresh serve process: session 10's profile). Bytes node:http already took from the head's read come
 * first (its answer object is drained before a read lands in a block). The body ends at the length; an
 * early end of the connection is node:http's 'aborted' error, as before.
 */
export class DirectBody extends Readable implements DirectSink {
  private block: Buffer = Buffer.allocUnsafeSlow(BLOCK_BYTES);
  /** Where blocks come from once `usePool` was called; `filling`: this body still holds `block`'s reference. */
  private pool: BlockPool | undefined;
  private filling = false;
  /** Bytes of `block` filled; `sent`: of those, handed on. */
  private used = 0;
  private sent = 0;
  /** Chunks gathered but not yet taken; the consumer asked and nothing was there (`wanting`). */
  private readonly queue: Buffer[] = [];
  private wanting = false;
  private paused = false;
  private complete = false;
  private failure: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Body mode: the connection, the body's length, the bytes of it received, the room handed to the kernel. */
  private socket: PlainSocket | undefined;
  private expected = 0;
  private received = 0;
  private given: Buffer | undefined;

  constructor(
    private readonly res: IncomingMessage,
    private readonly req: ClientRequest,
    private readonly url: string,
    private readonly signal: AbortSignal | undefined,
    private readonly idleMs: number,
    private readonly release: () => void,
  ) {
    super({ objectMode: true, highWaterMark: 1 }); // chunks wait in `queue`, so a failure can come after them
    // the body can end or fail in the same I/O turn as the head, before the caller has a listener; the
    // error stays in `errored`, and a later iteration or finished() still sees it
    this.on('error', () => undefined);
    res.on('data', (chunk: Buffer) => this.gather(chunk));
    res.on('end', () => this.finish());
    res.on('error', (err) => this.fail(err));
    this.readDirect();
  }

  /** Enters body mode when the answer allows it (see the class comment). */
  private readDirect(): void {
    const socket = this.req.socket;
    const length = this.res.headers['content-length'];
    if (socket === null || !plainSockets.has(socket)) return;
    if (this.res.statusCode !== 200 && this.res.statusCode !== 206) return;
    if (this.res.headers['transfer-encoding'] !== undefined || length === undefined || !/^\d{1,15}$/.test(length)) return;
    this.expected = Number(length);
    if (this.expected === 0) return;
    this.socket = socket;
    this.socket[SINK] = this;
  }

  /** DirectSink: room in the current block for the next read (the shared buffer while node:http still holds body bytes). */
  room(): Buffer | undefined {
    this.given = undefined;
    if (this.complete || this.destroyed || this.failure !== undefined || this.res.readableLength > 0) return undefined;
    if (BLOCK_BYTES - this.used < MIN_ROOM && !this.nextBlock()) return undefined;
    this.given = this.block.subarray(this.used, this.used + Math.min(BLOCK_BYTES - this.used, this.expected - this.received));
    return this.given;
  }

  /** DirectSink: a read put `n` bytes into `buf` (our room, or the shared buffer); false pauses the socket. */
  filled(n: number, buf: Uint8Array): boolean {
    if (this.destroyed || this.failure !== undefined || this.complete) return false;
    if (buf === this.given) { // net hands back the very buffer `room()` gave it
      this.used += n;
      this.received += n;
      this.given = undefined;
      this.afterFill();
    } else {
      this.takeBuffered(); // node:http's bytes first, then this read's, up to the length
      this.gather(Buffer.from(buf.buffer, buf.byteOffset, Math.min(n, this.expected - this.received)));
    }
    return !this.paused;
  }

  /**
   * From now on, blocks come from `pool` (of BLOCK_BYTES blocks) and each chunk handed on carries one
   * reference to its block, which the consumer releases (`pool.release(chunk)`) once nothing reads the
   * chunk any more; a chunk never released is left to the GC. Chunks handed on before are not pooled.
   */
  usePool(pool: BlockPool): void {
    if (pool.blockBytes !== BLOCK_BYTES) throw new VmimgError(ErrorCode.INTERNAL, `a pool of ${pool.blockBytes}-byte blocks for ${BLOCK_BYTES}-byte body blocks`);
    this.pool = pool;
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
      if (this.paused && this.queue.length < QUEUED / 2) this.resumeResponse();
    } else if (this.failure !== undefined) {
      this.destroy(this.failure); // only now: every byte that came before it went out first
    } else if (this.complete) {
      this.push(null);
    } else {
      this.wanting = true;
      this.resumeResponse();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.timer);
    this.release();
    // chunks never taken are read by no one: their blocks can go back
    for (const chunk of this.queue.splice(0)) this.pool?.release(chunk);
    this.req.destroy(); // before the block goes back: no read may land in it
    this.letGoOfBlock();
    // an abort ends the body at once (queued chunks are dropped), coded like any other failure
    const why = err ?? (this.signal?.aborted === true ? networkError(abortError(), this.url, this.signal) : null);
    cb(why);
  }

  /** Ends the body with `err` after the bytes that arrived before it. */
  fail(err: unknown): void {
    if (this.destroyed || this.failure !== undefined || this.complete) return;
    if (this.signal?.aborted === true) return void this.destroy(networkError(abortError(), this.url, this.signal));
    this.takeBuffered(); // bytes framed before the failure (llhttp refusing what followed them in one read: breaker10)
    if (this.complete) return; // ...which were the whole body (its length reached): what followed is not ours
    this.flush();
    this.failure = coded(err, this.url, this.signal);
    this.req.destroy(); // before the block goes back: no read may land in it
    this.letGoOfBlock(); // nothing more comes
    if (this.wanting && this.queue.length === 0) this.destroy(this.failure);
  }

  private resumeResponse(): void {
    if (!this.paused) return;
    this.paused = false;
    this.req.setTimeout(this.idleMs);
    if (this.socket !== undefined) this.socket.resume();
    else this.res.resume();
  }

  /** Copies `chunk` into the current block, handing on full blocks; a partial one goes out after FLUSH_MS. */
  private gather(chunk: Buffer): void {
    if (this.destroyed) return;
    let at = 0;
    while (at < chunk.length) {
      if (BLOCK_BYTES - this.used < MIN_ROOM && !this.nextBlock()) return;
      const n = chunk.copy(this.block, this.used, at);
      this.used += n;
      at += n;
    }
    this.received += chunk.length;
    this.afterFill();
  }

  /** After bytes landed in the block: a full block goes on, a partial one after FLUSH_MS; in body mode the length ends it. */
  private afterFill(): void {
    if (this.socket !== undefined && this.received >= this.expected) {
      this.socket.destroy(); // node:http's parser never saw the body: its view of this connection is dropped
      this.finish();
      return;
    }
    if (BLOCK_BYTES - this.used < MIN_ROOM) this.nextBlock();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Hands on the current block and starts the next; false when the consumer destroyed the body meanwhile (on the chunk just handed on). */
  private nextBlock(): boolean {
    this.flush();
    this.letGoOfBlock();
    if (this.destroyed) return false; // no new block for a body no one reads (breaker10: a pooled one was never given back)
    if (this.pool !== undefined) {
      this.block = this.pool.take();
      this.filling = true;
    } else {
      this.block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
    }
    this.used = 0;
    this.sent = 0;
    return true;
  }

  /** Takes the body bytes node:http still buffers in its answer object (reading them emits them to gather). */
  private takeBuffered(): void {
    while (this.res.readableLength > 0 && this.res.read() !== null);
  }

  /** Drops this body's own reference to a pooled block it no longer fills (once). */
  private letGoOfBlock(): void {
    if (!this.filling) return;
    this.filling = false;
    this.pool!.release(this.block);
  }

  /** Hands on the bytes gathered since the last hand-over, as one view. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.used <= this.sent) return;
    const view = this.block.subarray(this.sent, this.used);
    this.sent = this.used;
    if (this.filling) this.pool!.hold(view); // the consumer's reference
    if (this.wanting) {
      this.wanting = false;
      this.push(view);
      return;
    }
    this.queue.push(view);
    if (this.queue.length < QUEUED || this.paused) return;
    this.paused = true;
    this.req.setTimeout(0); // a consumer holding the body back is not the server stalling
    if (this.socket !== undefined) this.socket.pause();
    else this.res.pause();
  }

  /** The whole body is in: hand on the rest and end. */
  private finish(): void {
    if (this.destroyed || this.failure !== undefined || this.complete) return;
    if (this.socket !== undefined) this.socket[SINK] = undefined;
    this.flush();
    this.complete = true;
    this.release();
    this.letGoOfBlock();
    if (this.wanting && this.queue.length === 0) this.push(null);
  }
}

function abortError(): Error {
  return Object.assign(new Error('aborted'), { name: 'AbortError' });
}

function timeoutError(code: string): Error {
  return Object.assign(new Error(code === 'UND_ERR_HEADERS_TIMEOUT' ? 'no response head in time' : 'no body data in time'), { code });
}

/** llhttp's refusals (HPE_*) are the registry's fault, not the network's; the rest as networkError. */
function coded(err: unknown, url: string, signal: AbortSignal | undefined): VmimgError {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('HPE_') && signal?.aborted !== true) {
    return new VmimgError(ErrorCode.REGISTRY_ERROR, `malformed HTTP answer from ${redactUrl(url)}: ${(err as Error).message}`, { cause: err, details: { url: redactUrl(url), errno: code } });
  }
  return networkError(err, url, signal);
}
