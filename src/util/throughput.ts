/**
 * A minimum-throughput rule for one response body. Idle timeouts alone never end a body that trickles
 * (1 byte per second resets them forever), so this guard measures the average rate over a window and
 * cuts the attempt when it is too low; the caller then resumes from what it verified. It also announces
 * a stall after a few seconds without a byte, so a display never freezes silently.
 *
 * Only time spent waiting on the network counts: while the consumer holds the stream back (a busy disk,
 * a flattener behind), the clock stops, so a slow consumer is never blamed on the registry.
 */
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { humanWait, type NoticeListener } from './retry.js';

export interface ThroughputRule {
  /** An attempt averaging less than this over `windowMs` of waiting is cut (default 1024 B/s; 0 = off). */
  readonly minBytesPerSecond: number;
  /** The averaging window (default 30 s). */
  readonly windowMs: number;
  /** A stall notice after this long without a byte (default 5 s). */
  readonly stallNoticeMs: number;
}

/** At least 1 KiB/s averaged over 30 s of waiting; a stall notice after 5 s without a byte. */
export const DEFAULT_THROUGHPUT: ThroughputRule = { minBytesPerSecond: 1024, windowMs: 30_000, stallNoticeMs: 5_000 };

/** What the guard names in its notices and errors, and who hears its stall notices. */
export interface GuardOptions {
  /** What is read, for messages (`blob sha256:…`). */
  readonly what: string;
  /** Where from (a host), for messages. */
  readonly from?: string | undefined;
  readonly onNotice?: NoticeListener | undefined;
}

/**
 * The chunks of `source`, in order and unchanged, while the rule holds; when it breaks, `source` is
 * destroyed with a retryable ERR_NETWORK (`details.tooSlow`), which the iteration then throws. Time
 * counts only while this iteration waits for the source's next chunk (not while its consumer works).
 */
export async function* guardThroughput(source: Readable, rule: Partial<ThroughputRule> | undefined, options: GuardOptions): AsyncGenerator<Buffer> {
  const r = { ...DEFAULT_THROUGHPUT, ...rule };
  const from = options.from !== undefined ? ` from ${options.from}` : '';
  let bytes = 0;
  let waiting = false;
  let waited = 0; // ms spent waiting on the source
  let sinceByte = 0; // ms of waiting since the last byte
  let stallSaid = false;
  const samples: [waited: number, bytes: number][] = [[0, 0]];
  let last = Date.now();
  const tick = (): void => {
    const now = Date.now();
    const dt = now - last;
    last = now;
    if (!waiting) return;
    waited += dt;
    sinceByte += dt;
    if (sinceByte >= r.stallNoticeMs && !stallSaid) {
      stallSaid = true;
      const message = `no data${from} for ${humanWait(sinceByte)}`;
      options.onNotice?.({ kind: 'stall', what: options.what, seconds: Math.round(sinceByte / 1000), message });
    }
    samples.push([waited, bytes]);
    while (samples.length > 1 && samples[1]![0] <= waited - r.windowMs) samples.shift();
    if (r.minBytesPerSecond <= 0 || waited < r.windowMs) return;
    const rate = ((bytes - samples[0]![1]) * 1000) / r.windowMs;
    if (rate < r.minBytesPerSecond) source.destroy(tooSlow(options.what, from, rate, r));
  };
  const timer = setInterval(tick, Math.max(10, Math.min(1000, r.stallNoticeMs / 4, r.windowMs / 8)));
  timer.unref();
  try {
    const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    for (;;) {
      last = Date.now();
      waiting = true;
      const next = await chunks.next();
      tick(); // count the wait up to now
      waiting = false;
      if (next.done === true) return;
      bytes += next.value.length;
      sinceByte = 0;
      stallSaid = false;
      yield next.value;
    }
  } finally {
    clearInterval(timer);
  }
}
function tooSlow(what: string, from: string, rate: number, r: ThroughputRule): VmimgError {
  const shown = rate < 10 ? rate.toFixed(1) : String(Math.round(rate));
  return new VmimgError(
    ErrorCode.NETWORK,
    `${what}: too slow${from}: ${shown} B/s over ${humanWait(r.windowMs)}, under the ${r.minBytesPerSecond} B/s minimum`,
    {
      hint: 'The download resumes where it stopped; lower "minBytesPerSecond" in the vmimg config file for a slow link.',
      details: { retryable: true, tooSlow: true, reason: `too slow (${shown} B/s)${from}` },
    },
  );
}
