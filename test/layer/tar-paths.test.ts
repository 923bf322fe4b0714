// normaliseTarPath's fast path (the spellings tar writers use, returned without splitting) must agree
// with the component walk on every name: all names of up to 7 characters over the characters that
// matter ('a', '.', '/', NUL), and the spellings of real layers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normaliseSlowly, normaliseTarPath } from '../../src/layer/paths.js';

test('normaliseTarPath agrees with the component walk on every name of up to 7 characters', () => {
  const alphabet = ['a', '.', '/', '\0'];
  let names = [''];
  let checked = 0;
  for (let len = 0; len <= 7; len++) {
    for (const name of names) {
      assert.equal(normaliseTarPath(name), normaliseSlowly(name), JSON.stringify(name));
      checked++;
    }
    names = names.flatMap((n) => alphabet.map((c) => n + c));
  }
  assert.equal(checked, (4 ** 8 - 1) / 3);
});

test('normaliseTarPath on the spellings of real layers', () => {
  const cases: [string, string | null][] = [
    ['usr/bin/env', 'usr/bin/env'],
    ['./usr/bin/env', 'usr/bin/env'],
    ['/usr/bin/env', 'usr/bin/env'],
    ['usr/share/', 'usr/share'],
    ['./', ''],
    ['/', ''],
    ['.', ''],
    ['..', null],
    ['a/../../b', null],
    ['a/./b/../c', 'a/c'],
    ['//a//b//', 'a/b'],
    ['.../..a/a..', '.../..a/a..'],
    ['.wh..wh..opq', '.wh..wh..opq'],
    ['a/\0b', null],
  ];
  for (const [name, want] of cases) assert.equal(normaliseTarPath(name), want, JSON.stringify(name));
});
