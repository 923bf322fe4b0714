/**
 * util/byte-names: the lossless name decoding is Python's PEP 383 "surrogateescape" (checked against
 * python3 itself on random byte strings), round-trips every byte string, leaves UTF-8 unchanged and
 * keeps bytewise order.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { compareNameBytes, decodeName, encodeName, isRawName, nameString } from '../../src/util/byte-names.js';
import { requireTool, run } from '../helpers/tools.js';

/** A deterministic PRNG (mulberry32), so a failure names a reproducible case. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random names biased towards the hard parts: lead bytes, continuations, truncated and overlong forms, surrogates. */
function randomNames(count: number, seed: number): Buffer[] {
  const r = rng(seed);
  const pieces = [[0x61], [0x2f], [0x80], [0xbf], [0xc0, 0x80], [0xc3], [0xc3, 0xa4], [0xe4, 0xb8], [0xe4, 0xb8, 0x80], [0xed, 0xa0, 0x80],
    [0xed, 0x9f, 0xbf], [0xef, 0xbf, 0xbd], [0xf0, 0x9f, 0x92, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xff], [0xfe], [0x1b]];
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const bytes: number[] = [];
    const n = Math.floor(r() * 8);
    for (let k = 0; k < n; k++) {
      if (r() < 0.3) bytes.push(Math.floor(r() * 256));
      else bytes.push(...pieces[Math.floor(r() * pieces.length)]!);
    }
    out.push(Buffer.from(bytes));
  }
  return out;
}

describe('byte names (surrogateescape)', () => {
  const names = randomNames(3000, 20261130);

  it('decodes exactly as python3 bytes.decode("utf-8", "surrogateescape")', async () => {
    const python = requireTool('python3');
    const script = 'import sys, json\nfor h in json.load(sys.stdin): print(json.dumps(bytes.fromhex(h).decode("utf-8", "surrogateescape")))';
    const out = await run(python, ['-c', script], { input: JSON.stringify(names.map((b) => b.toString('hex'))) });
    const expected = out.trimEnd().split('\n').map((l) => JSON.parse(l) as string);
    assert.equal(expected.length, names.length);
    names.forEach((b, i) => assert.equal(decodeName(b), expected[i], `bytes ${b.toString('hex')}`));
  });

  it('round-trips every byte string, and valid UTF-8 decodes as usual', () => {
    for (const b of names) {
      const s = decodeName(b);
      assert.deepEqual(encodeName(s), b, `bytes ${b.toString('hex')}`);
      assert.equal(isRawName(s), !isUtf8(b), `bytes ${b.toString('hex')}`);
      if (isUtf8(b)) assert.equal(s, b.toString('utf8'));
      assert.equal(nameString(b), s);
      assert.equal(nameString(s), s);
    }
  });

  it('keeps names that differ in one invalid byte apart (the Latin-1 case)', () => {
    const a = decodeName(Buffer.from('file-\xe4', 'latin1'));
    const b = decodeName(Buffer.from('file-\xe5', 'latin1'));
    const c = decodeName(Buffer.from('file-\ufffd', 'utf8'));
    assert.equal(new Set([a, b, c]).size, 3);
    assert.equal(a, 'file-\udce4');
  });

  it('orders decoded names as their bytes (Buffer.compare)', () => {
    const sorted = names.map(decodeName).sort(compareNameBytes).map(encodeName);
    const bytewise = [...names].sort(Buffer.compare);
    assert.deepEqual(sorted, bytewise);
  });

  it('refuses strings that no byte string decodes to (a lone high surrogate)', () => {
    assert.throws(() => encodeName('a\ud800b'), RangeError);
    assert.throws(() => encodeName('a\udc00'), RangeError);
    assert.deepEqual(encodeName('\ud83d\udc80'), Buffer.from('f09f9280', 'hex')); // a pair whose low half is in the escape range
  });
});
