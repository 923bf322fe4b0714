/** Response bodies as the client hands them on: errors coded, and (for manifests, configs) held to the throughput rule. */
import { PassThrough, Readable } from 'node:stream';
import { hostOf, type NoticeListener } from '../util/retry.js';
import { guardThroughput, type ThroughputRule } from '../util/throughput.js';
import { networkError } from './http-errors.js';
import type { HttpResponse } from './transport.js';

/** The body with its errors turned into VmimgErrors (ERR_NETWORK with `retryable`, ERR_ABORTED). */
export function codedErrors(body: Readable, url: string, signal?: AbortSignal): Readable {
  const out = new PassThrough();
  body.on('error', (err) => out.destroy(networkError(err, url, signal)));
  out.on('close', () => body.destroy());
  return body.pipe(out);
}

/** Chunks with their errors turned into VmimgErrors (as codedErrors, for an iteration). */
async function* codedChunks(chunks: AsyncIterable<Buffer>, url: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  try {
    yield* chunks;
  } catch (err) {
    throw networkError(err, url, signal);
  }
}

/** The response with its body held to the minimum-throughput rule (a trickling manifest is cut and retried). */
export function guardedBody(res: HttpResponse, what: string, rule: ThroughputRule, onNotice: NoticeListener | undefined, signal?: AbortSignal): HttpResponse {
  const source = res.body;
  source.on('error', () => undefined); // read through the iteration below; a late one after destroy is moot
  const chunks = guardThroughput(source, rule, { what, from: hostOf(res.url), onNotice });
  const body = Readable.from(codedChunks(chunks, res.url, signal), { objectMode: false });
  body.on('close', () => source.destroy());
  return { ...res, body: body as unknown as HttpResponse['body'] };
}
