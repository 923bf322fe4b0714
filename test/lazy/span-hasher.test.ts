// The span hasher (src/lazy/span-hasher.ts): sha256 of span ranges read by a thread of its own straight
// from a shared input ring, as the inflate worker's checkpointing streams use it. Judged by node:crypto
// over the same bytes; the ring's bytes must be held (safeTo) until the hasher answered.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { SpanHashStream } from '../../src/lazy/span-hasher.js';
import { childNode } from '../helpers/cache.js';

const sha = (...parts: Uint8Array[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

describe('span hasher', () => {
  test('spans over a wrapping ring, with a prefix byte, equal node:crypto; the ring is held until answered', async () => {
    const blob = randomBytes(5 << 20);
    const ring = new Uint8Array(new SharedArrayBuffer(2 << 20));
    let answers = 0;
    const s = new SpanHashStream(ring, () => answers++);
    const expected: string[] = [];
    const digests: Promise<string>[] = [];
    let written = 0;
    // spans [0, 700000), [700000, 1.9 MiB) with the byte before it first, then up to 5 MiB: each crosses the ring's end
    const cuts = [0, 700_000, 1_992_294, 3_500_000, blob.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [from, to] = [cuts[i]!, cuts[i + 1]!];
      s.begin();
      if (i === 1) s.byte(blob[from - 1]!);
      for (let at = from; at < to; ) {
        const end = Math.min(to, at + 300_000);
        // write only what the ring can take beyond the bytes the hasher may still read
        while (written < end) {
          const limit = Math.min(s.safeTo, at) + ring.length;
          if (written >= limit) {
            s.flush();
            await new Promise<void>((r) => setTimeout(r, 1));
            continue;
          }
          const n = Math.min(end - written, limit - written, ring.length - (written % ring.length));
          ring.set(blob.subarray(written, written + n), written % ring.length);
          written += n;
        }
        s.range(at, end);
        assert.ok(s.safeTo <= at, 'declared bytes are held before they are sent');
        at = end;
      }
      digests.push(s.end());
      expected.push(i === 1 ? sha(blob.subarray(from - 1, to)) : sha(blob.subarray(from, to)));
      s.flush();
    }
    assert.deepEqual(await Promise.all(digests), expected);
    assert.equal(s.safeTo, Infinity, 'nothing held once every message is answered');
    assert.ok(answers > 0);
    s.close();
  });

  test('bytes stay held while any message reading them is unanswered, whatever follows it', async () => {
    const ring = new Uint8Array(new SharedArrayBuffer(1 << 20));
    const s = new SpanHashStream(ring, () => undefined);
    s.begin();
    s.flush(); // a message with no range, ahead of the one that reads [1000, 5000)
    s.range(1000, 5000);
    s.flush();
    const digest = s.end();
    s.flush(); // and one behind it
    assert.equal(s.safeTo, 1000); // nothing can be answered before this turn ends
    assert.equal(await digest, createHash('sha256').update(ring.subarray(1000, 5000)).digest('hex'));
    assert.equal(s.safeTo, Infinity);
    s.close();
  });

  test('messages in flight when a stream closes are answered (the hasher is not kept referenced)', async () => {
    // the hasher stays referenced while a message is unanswered: this process exits only if it was answered
    const code = await new Promise<number>((resolve) => {
      const { ext, execArgv } = childNode(import.meta.url); // built (npm test) or from source
      const child = spawn(process.execPath, [...execArgv, '--input-type=module', '-e', `
        const { SpanHashStream } = await import(${JSON.stringify(new URL(`../../src/lazy/span-hasher${ext}`, import.meta.url).href)});
        const s = new SpanHashStream(new Uint8Array(new SharedArrayBuffer(1 << 20)), () => undefined);
        s.begin(); s.range(0, 1 << 20); s.flush(); s.close();`], { stdio: 'inherit' });
      const timer = setTimeout(() => (child.kill(), resolve(-1)), 20_000);
      child.on('exit', (c) => (clearTimeout(timer), resolve(c ?? -2)));
    });
    assert.equal(code, 0, 'the process did not exit: a closed stream left its hasher referenced');
  });

  test('a closed stream lets go: no answer reaches it', async () => {
    let answers = 0;
    const s = new SpanHashStream(new Uint8Array(new SharedArrayBuffer(1 << 20)), () => answers++);
    s.begin();
    s.range(0, 1000);
    void s.end();
    s.close();
    s.flush(); // after close: nothing is sent
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answers, 0);
  });
});
