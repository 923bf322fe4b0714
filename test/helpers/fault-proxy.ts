// A real loopback HTTP proxy in front of a real registry that injects faults per test:
// statuses (429/503 with Retry-After), resets and stalls mid-body, bodies longer than their
// descriptor, wrong bytes, replaced (huge) bodies, redirects to another host, bodies and
// headers that trickle (slowloris), and a corrupted prefix followed by a reset.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, but cut the connection after this many body bytes. */
  | { kind: 'reset'; afterBytes: number }
  /** Forward, then stop sending (connection left open) after this many body bytes. */
  | { kind: 'stall'; afterBytes: number }
  /** Forward this many body bytes, call `reached`, then hold the rest until `release` settles (a pull caught mid-blob). */
  | { kind: 'hold'; afterBytes: number; reached?: () => void; release: Promise<void> }
  /** Forward with extra bytes appended; `chunked` drops Content-Length instead of raising it. */
  | { kind: 'extend'; extra: number; chunked?: boolean }
  /** Forward with one byte flipped (same length). */
  | { kind: 'corrupt' }
  /**
   * Forward all but the body's last `bytes` bytes, call `reached`, hold the rest until `release`
   * settles, then send it with its first byte flipped (the corrupted end arrives when the test says).
   */
  | { kind: 'corrupt-tail'; bytes: number; reached?: () => void; release: Promise<void> }
  /** Forward with the byte at `at` flipped, then cut the connection after `afterBytes` (a bad prefix, then RST). */
  | { kind: 'corrupt-then-reset'; at: number; afterBytes: number }
  /** Forward `afterBytes` at full speed, then `bytes` bytes every `everyMs` ms (slowloris). */
  | { kind: 'trickle'; afterBytes: number; bytes: number; everyMs: number }
  /** Send the response's status line and headers one byte every `everyMs` ms, never finishing them. */
  | { kind: 'slow-headers'; everyMs: number }
  /** Answer 200 with this body instead; `chunked` sends no Content-Length. */
  | { kind: 'body'; body: Buffer; contentType?: string; chunked?: boolean }
  /** Forward without the Range header (a server that ignores Range and sends everything). */
  | { kind: 'ignore-range' }
  /** Forward without these response headers (lowercase names), e.g. a HEAD lacking Docker-Content-Digest. */
  | { kind: 'strip-headers'; headers: string[] }
  /** 307 to `${to}${path}${query}`. */
  | { kind: 'redirect'; to: string; query?: string };

export interface FaultRule {
  method?: string;
  /** Matches the request path (string: substring). */
  path: string | RegExp;
  fault: Fault;
  /** How many matching requests get the fault (default: all). */
  times?: number;
}

export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization?: string;
  readonly range?: string;
  /** The request's Content-Range (chunked uploads). */
  readonly contentRange?: string;
  /** The fault applied, if any. */
  readonly fault?: Fault['kind'];
}

export interface FaultProxy {
  readonly host: string;
  readonly url: string;
  readonly requests: ProxiedRequest[];
  add(rule: FaultRule): void;
  clear(): void;
  stop(): Promise<void>;
}

/**
 * `forwardedHost`: send `X-Forwarded-Host: <proxy host>` upstream, so the registry's upload Locations
 * point back at the proxy (distribution builds them from that header) and faults reach uploads too.
 */
export async function startFaultProxy(upstream: string, options: { bindAddress?: string; forwardedHost?: boolean } = {}): Promise<FaultProxy> {
  const target = new URL(upstream);
  const rules: (FaultRule & { used: number })[] = [];
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();

  const pick = (req: IncomingMessage): Fault | undefined => {
    const path = req.url ?? '/';
    for (const rule of rules) {
      if (rule.method !== undefined && rule.method !== req.method) continue;
      if (typeof rule.path === 'string' ? !path.includes(rule.path) : !rule.path.test(path)) continue;
      if (rule.times !== undefined && rule.used >= rule.times) continue;
      rule.used++;
      return rule.fault;
    }
    return undefined;
  };

  let host = '';
  const server: Server = createServer((req, res) => {
    const fault = pick(req);
    requests.push({
      method: req.method ?? '',
      path: req.url ?? '/',
      ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
      ...(typeof req.headers.range === 'string' ? { range: req.headers.range } : {}),
      ...(typeof req.headers['content-range'] === 'string' ? { contentRange: req.headers['content-range'] } : {}),
      ...(fault !== undefined ? { fault: fault.kind } : {}),
    });
    if (fault?.kind === 'status') {
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      res.end(fault.body ?? '');
      req.resume();
      return;
    }
    if (fault?.kind === 'slow-headers') {
      slowHeaders(req.socket, fault.everyMs);
      req.resume();
      return;
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(307, { location: `${fault.to}${req.url ?? '/'}${fault.query ?? ''}` });
      res.end();
      req.resume();
      return;
    }
    if (fault?.kind === 'body') {
      const headers: Record<string, string> = { 'content-type': fault.contentType ?? 'application/vnd.oci.image.manifest.v1+json' };
      if (!fault.chunked) headers['content-length'] = String(fault.body.length);
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : fault.body);
      req.resume();
      return;
    }
    forward(req, res, target, fault, options.forwardedHost === true ? host : undefined);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, options.bindAddress ?? '127.0.0.1', resolve));
  const { port, address } = server.address() as AddressInfo;
  host = `${address}:${port}`;
  return {
    host,
    url: `http://${host}`,
    requests,
    add: (rule) => rules.push({ ...rule, used: 0 }),
    clear: () => {
      rules.length = 0;
      requests.length = 0;
    },
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function forward(req: IncomingMessage, res: ServerResponse, target: URL, fault: Fault | undefined, forwardedHost?: string): void {
  const headers = { ...req.headers, host: target.host, ...(forwardedHost !== undefined ? { 'x-forwarded-host': forwardedHost } : {}) };
  if (fault?.kind === 'ignore-range') delete headers.range;
  const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
    const outHeaders = { ...upRes.headers };
    if (fault?.kind === 'strip-headers') for (const name of fault.headers) delete outHeaders[name];
    const length = Number(upRes.headers['content-length'] ?? NaN);
    if (fault?.kind === 'extend') {
      if (fault.chunked) delete outHeaders['content-length'];
      else if (!Number.isNaN(length)) outHeaders['content-length'] = String(length + fault.extra);
    }
    res.writeHead(upRes.statusCode ?? 502, outHeaders);
    const ok = (upRes.statusCode ?? 500) < 300 && req.method !== 'HEAD';
    if (!ok || fault === undefined || fault.kind === 'ignore-range' || fault.kind === 'strip-headers') {
      upRes.pipe(res);
      return;
    }
    transformBody(upRes, res, fault, length);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}

function slowHeaders(socket: Socket, everyMs: number): void {
  const head = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Pad: ');
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed) return clearInterval(timer);
    socket.write(i < head.length ? head.subarray(i, i + 1) : 'a');
    i++;
  }, everyMs);
  socket.on('close', () => clearInterval(timer));
}

/** The whole upstream body, then written as the fault says: a prefix at once, the rest in small doses. */
function trickle(upRes: IncomingMessage, res: ServerResponse, fault: Extract<Fault, { kind: 'trickle' }>): void {
  const parts: Buffer[] = [];
  upRes.on('data', (chunk: Buffer) => parts.push(chunk));
  upRes.on('end', () => {
    const body = Buffer.concat(parts);
    res.write(body.subarray(0, fault.afterBytes));
    let sent = Math.min(fault.afterBytes, body.length);
    const timer = setInterval(() => {
      if (res.destroyed || sent >= body.length) {
        clearInterval(timer);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(body.subarray(sent, sent + fault.bytes));
      sent += fault.bytes;
    }, fault.everyMs);
    res.on('close', () => clearInterval(timer));
  });
}

function transformBody(upRes: IncomingMessage, res: ServerResponse, fault: Fault, length: number): void {
  if (fault.kind === 'trickle') return trickle(upRes, res, fault);
  if (fault.kind === 'corrupt-tail') return corruptTail(upRes, res, fault);
  let sent = 0;
  let flipped = false;
  let held = false;
  /** The held rest's write: a body that came in one chunk has ended meanwhile, and must end after it. */
  let holding: Promise<void> | undefined;
  upRes.on('data', (chunk: Buffer) => {
    if (fault.kind === 'hold' && !held && sent + chunk.length > fault.afterBytes) {
      held = true;
      const part = chunk.subarray(0, fault.afterBytes - sent);
      sent += part.length;
      res.write(part);
      upRes.pause();
      fault.reached?.();
      holding = fault.release.then(() => {
        sent += chunk.length - part.length;
        res.write(chunk.subarray(part.length));
        upRes.resume();
      });
      return;
    }
    if (fault.kind === 'corrupt-then-reset') {
      if (sent >= fault.afterBytes) return;
      const part = Buffer.from(chunk.subarray(0, fault.afterBytes - sent));
      if (fault.at >= sent && fault.at < sent + part.length) part[fault.at - sent] = part[fault.at - sent]! ^ 0xff;
      sent += part.length;
      const done = sent >= fault.afterBytes;
      res.write(part, () => {
        if (done) res.socket?.destroy();
      });
      return;
    }
    if (fault.kind === 'reset' || fault.kind === 'stall') {
      if (sent >= fault.afterBytes) return;
      const part = chunk.subarray(0, fault.afterBytes - sent);
      sent += part.length;
      const done = sent >= fault.afterBytes;
      res.write(part, () => {
        if (done && fault.kind === 'reset') res.socket?.destroy();
      });
      if (done && fault.kind === 'stall') upRes.pause(); // hold the connection open, sending nothing more
      return;
    }
    if (fault.kind === 'corrupt' && !flipped && sent + chunk.length > (Number.isNaN(length) ? 0 : length / 2)) {
      chunk = Buffer.from(chunk);
      const at = Math.max(0, Math.floor((Number.isNaN(length) ? 0 : length / 2) - sent));
      chunk[at] = chunk[at]! ^ 0xff;
      flipped = true;
    }
    sent += chunk.length;
    res.write(chunk);
  });
  upRes.on('end', () => {
    // A body shorter than the cut point never triggered the fault: finish it like a clean one.
    if ((fault.kind === 'reset' || fault.kind === 'stall' || fault.kind === 'corrupt-then-reset') && sent >= fault.afterBytes) return;
    if (fault.kind === 'extend') res.write(Buffer.alloc(fault.extra, 0x5a));
    if (holding !== undefined) void holding.then(() => res.end());
    else res.end();
  });
}

/** The whole upstream body; all but its tail at once, then (on release) the tail with its first byte flipped. */
function corruptTail(upRes: IncomingMessage, res: ServerResponse, fault: Extract<Fault, { kind: 'corrupt-tail' }>): void {
  const parts: Buffer[] = [];
  upRes.on('data', (chunk: Buffer) => parts.push(chunk));
  upRes.on('end', () => {
    const body = Buffer.concat(parts);
    const cut = Math.max(0, body.length - fault.bytes);
    res.write(body.subarray(0, cut));
    fault.reached?.();
    void fault.release.then(() => {
      const tail = Buffer.from(body.subarray(cut));
      if (tail.length > 0) tail[0] = tail[0]! ^ 0xff;
      if (!res.destroyed) res.end(tail);
    });
  });
}
