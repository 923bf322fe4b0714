// curl as the outside HTTP client: status, headers (lowercase names) and body bytes of one request.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTools, run, tmpDir } from './tools.js';

export interface CurlAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** The body as JSON (throws when it is not). */
  json<T = unknown>(): T;
}

/** `curl -sS` of `url` with extra args (`-I`, `-r 0-99`, `-H ...`); never fails on an HTTP status. */
export async function curl(url: string, args: string[] = []): Promise<CurlAnswer> {
  requireTools(['curl']);
  const dir = await tmpDir('vmimg-curl-');
  const head = join(dir, 'headers');
  const out = join(dir, 'body');
  const code = await run('curl', ['-sS', '--path-as-is', '-D', head, '-o', out, '-w', '%{http_code}', ...args, url]);
  const headers: Record<string, string> = {};
  const blocks = readFileSync(head, 'utf8').trim().split(/\r?\n\r?\n/);
  for (const line of blocks.at(-1)!.split(/\r?\n/).slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body: Buffer;
  try {
    body = readFileSync(out);
  } catch {
    body = Buffer.alloc(0); // HEAD, or an empty answer
  }
  return { status: Number(code), headers, body, json: <T>() => JSON.parse(body.toString('utf8')) as T };
}
