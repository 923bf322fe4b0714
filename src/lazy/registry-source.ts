/**
 * A RangeSource over a registry blob (src/lazy/lazy-content.ts): one bounded Range GET per call through
 * the registry client (auth, mirrors, redirects). The client checks that a 206 starts where asked;
 * this checks that exactly the asked bytes come. A 200 (Range ignored) hands the whole body over.
 * A range is fetched under the one network retry policy (util/retry.ts, the client's `retryPolicy`),
 * like a layer download: a reset, stall or short body mid-range asks again for the bytes still missing
 * (the ones already here count as progress); the body is held to the client's throughput rule. A span
 * whose bytes do not match its digest is the caller's check, after this, and is not retried here.
 */
import type { Descriptor } from '../manifest/types.js';
import type { RegistryClient, RepositoryRef } from '../registry/client.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { RetryBudget, type NoticeListener } from '../util/retry.js';
import { guardThroughput } from '../util/throughput.js';
import { fanOutOf } from '../util/abort-fan-out.js';
import type { RangeAnswer, RangeSource } from './lazy-content.js';

/** Who hears a range fetch's retry waits and stalls, and what aborts it. */
export interface RangeSourceOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onNotice?: NoticeListener | undefined;
}

/**
 * Ranges of `desc` in `repo` through `client`, each retried under the client's retry policy (errors: the
 * client's coded ones once the budget is spent; ERR_REGISTRY_ERROR for more bytes than asked).
 */
export function registryRangeSource(client: RegistryClient, repo: RepositoryRef, desc: Descriptor, options: RangeSourceOptions = {}): RangeSource {
  const { onNotice } = options;
  return {
    async read(start: number, end: number): Promise<RangeAnswer> {
      // Each read (read-ahead runs many at once) listens on a child of the caller's signal, not on it:
      // more than 10 undici requests on one signal print MaxListenersExceededWarning (finding L2).
      const child = options.signal ? fanOutOf(options.signal).open() : undefined;
      try {
        const answer = await readRange(client, repo, desc, start, end, { signal: child?.signal, onNotice });
        if (answer.kind === 'whole' && child) answer.stream.once('close', child.release);
        else child?.release();
        return answer;
      } catch (err) {
        child?.release();
        throw err;
      }
    },
  };
}

/** One range under its own retry budget (see the module comment). */
async function readRange(client: RegistryClient, repo: RepositoryRef, desc: Descriptor, start: number, end: number, options: RangeSourceOptions): Promise<RangeAnswer> {
  const { signal, onNotice } = options;
  const want = Math.min(end, desc.size) - start;
  const what = `blob ${desc.digest} bytes ${start}-${start + want - 1}`;
  const budget = new RetryBudget(client.retryPolicy, { what, signal, onNotice });
  const parts: Buffer[] = [];
  const have = { bytes: 0 };
  for (;;) {
    const before = have.bytes;
    budget.attempt();
    try {
      const whole = await readRest(client, repo, desc, { start, want, what, parts, have, signal, onNotice });
      return whole ?? { kind: 'range', bytes: Buffer.concat(parts) };
    } catch (err) {
      if (signal?.aborted === true) throw err;
      // Bytes that came at a fair rate are progress; a trickle cut for slowness is not.
      if (have.bytes > before && (err as VmimgError).details?.tooSlow !== true) budget.progressed();
      await budget.failed(err);
    }
  }
}

interface RangeState extends RangeSourceOptions {
  start: number;
  want: number;
  what: string;
  /** The bytes received so far (kept across attempts) and their count. */
  parts: Buffer[];
  have: { bytes: number };
}

/** One attempt: asks for the bytes still missing and appends them; returns a whole-blob answer when Range was ignored. */
async function readRest(client: RegistryClient, repo: RepositoryRef, desc: Descriptor, s: RangeState): Promise<RangeAnswer | undefined> {
  const from = s.start + s.have.bytes;
  const need = s.want - s.have.bytes;
  const opened = await client.openBlob(repo, desc, { offset: from, length: need, ...(s.signal ? { signal: s.signal } : {}) });
  const whole = opened.offset === 0 && from === 0 && opened.length === desc.size && need !== desc.size;
  if ((opened.offset === 0 && from > 0) || whole) return { kind: 'whole', stream: opened.stream };
  for await (const chunk of guardThroughput(opened.stream, client.throughputRule, { what: s.what, from: opened.from, onNotice: s.onNotice })) {
    if (s.have.bytes + chunk.length > s.want) {
      opened.stream.destroy();
      throw new VmimgError(ErrorCode.REGISTRY_ERROR, `blob ${desc.digest}: asked for bytes ${s.start}-${s.start + s.want - 1}, the server sent more`);
    }
    s.parts.push(chunk);
    s.have.bytes += chunk.length;
  }
  if (s.have.bytes !== s.want) {
    throw new VmimgError(ErrorCode.NETWORK, `${s.what}: body ended after ${s.have.bytes} of ${s.want} bytes`, { details: { retryable: true, reason: `short body from ${opened.from}` } });
  }
  return undefined;
}
