/**
 * HTTP/1.1 response framing for direct-get.ts, pure (no I/O): the head (status line and headers,
 * RFC 9112 §4-5) and chunked transfer coding (§7.1), decoded without copying the data.
 */
import { ErrorCode, VmimgError } from '../errors.js';

/** A parsed response head. `length`: the body's Content-Length (0 when the status has no body). */
export interface ParsedHead {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly chunked: boolean;
  readonly length?: number;
}

/** Parses a head (without its final empty line); ERR_REGISTRY_ERROR when it is not HTTP/1.x. */
export function parseHead(text: string): ParsedHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]!);
  if (m === null) throw bad(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
  const status = Number(m[1]);
  const headers: Record<string, string | string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) throw bad(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const had = headers[name];
    headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  const te = [headers['transfer-encoding'] ?? []].flat().join(',').toLowerCase();
  const chunked = /(^|,)\s*chunked\s*$/.test(te);
  if (chunked || status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, headers, chunked, ...(chunked ? {} : { length: 0 }) };
  const lengths = new Set([headers['content-length'] ?? []].flat().flatMap((v) => v.split(',')).map((v) => v.trim()));
  if (lengths.size > 1) throw bad(`conflicting Content-Length values: ${[...lengths].join(', ')}`);
  const [one] = lengths;
  if (one === undefined) return { status, headers, chunked };
  if (!/^\d{1,16}$/.test(one)) throw bad(`bad Content-Length: ${JSON.stringify(one.slice(0, 40))}`);
  return { status, headers, chunked, length: Number(one) };
}

/** A chunked-coding decoder: `feed` returns the data in what it was given, as views; `done` after the last chunk's trailers. */
export function chunkedDecoder(): { feed(buf: Buffer): Buffer[]; readonly done: boolean } {
  let state: 'size' | 'data' | 'crlf' | 'trailer' | 'done' = 'size';
  let line = '';
  let left = 0;
  return {
    get done() {
      return state === 'done';
    },
    feed(buf: Buffer): Buffer[] {
      const out: Buffer[] = [];
      let i = 0;
      while (i < buf.length && state !== 'done') {
        if (state === 'data') {
          const n = Math.min(left, buf.length - i);
          out.push(buf.subarray(i, i + n));
          i += n;
          left -= n;
          if (left === 0) state = 'crlf';
          continue;
        }
        const nl = buf.indexOf(10, i);
        const end = nl < 0 ? buf.length : nl;
        line += buf.toString('latin1', i, end);
        if (line.length > 4096) throw bad('chunk size or trailer line over 4096 bytes');
        i = end + (nl < 0 ? 0 : 1);
        if (nl < 0) break;
        const text = line.replace(/\r$/, '');
        line = '';
        if (state === 'crlf') {
          if (text !== '') throw bad('chunk data not followed by CRLF');
          state = 'size';
        } else if (state === 'size') {
          const m = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(text.trim());
          if (m === null) throw bad(`bad chunk size line: ${JSON.stringify(text.slice(0, 40))}`);
          left = parseInt(m[1]!, 16);
          state = left === 0 ? 'trailer' : 'data';
        } else if (text === '') {
          state = 'done';
        }
      }
      return out;
    },
  };
}

function bad(message: string): VmimgError {
  return new VmimgError(ErrorCode.REGISTRY_ERROR, `malformed HTTP answer: ${message}`);
}
