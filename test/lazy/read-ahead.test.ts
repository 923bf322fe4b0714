// ReadAhead's decisions (src/lazy/read-ahead.ts), table-driven: which reads count as sequential, which
// spans a read gets fetched ahead, and the window's byte bound. Pure: no registry, no files.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReadAhead } from '../../src/lazy/read-ahead.js';

/** 20 spans of 1 MiB compressed; `present` lists the spans here or on their way. */
function decide(window: number, present: number[], reads: [lo: number, hi: number][]): number[][] {
  const here = new Set(present);
  const ra = new ReadAhead(() => 1 << 20, 20, window);
  return reads.map(([lo, hi]) => {
    const missed = [...Array(hi - lo + 1).keys()].some((k) => !here.has(lo + k));
    for (let i = lo; i <= hi; i++) here.add(i); // the read fetched its own spans
    const ahead = ra.after(lo, hi, missed, (i) => here.has(i));
    for (const i of ahead) here.add(i);
    return ahead;
  });
}

describe('read-ahead decisions', () => {
  const cases: { name: string; window: number; present: number[]; reads: [number, number][]; expect: number[][] }[] = [
    { name: 'random reads: nothing ahead', window: 4 << 20, present: [], reads: [[3, 3], [10, 10], [7, 8]], expect: [[], [], []] },
    { name: 'one span before is not enough', window: 4 << 20, present: [4], reads: [[5, 5]], expect: [[]] },
    { name: 'two spans before: forward, the window of 4 spans', window: 4 << 20, present: [3, 4], reads: [[5, 5]], expect: [[6, 7, 8, 9]] },
    { name: 'two spans after: backward', window: 3 << 20, present: [11, 12], reads: [[10, 10]], expect: [[7, 8, 9]] },
    { name: 'hits inside the window fetch nothing until half of it is missing', window: 4 << 20, present: [3, 4], reads: [[5, 5], [6, 6], [7, 7], [8, 8]], expect: [[6, 7, 8, 9], [], [10, 11], []] },
    { name: 'the window stops at the last span', window: 8 << 20, present: [16, 17], reads: [[18, 18]], expect: [[19]] },
    { name: 'a random miss ends the read-ahead', window: 4 << 20, present: [3, 4], reads: [[5, 5], [15, 15], [16, 16]], expect: [[6, 7, 8, 9], [], []] },
    { name: 'a window of 0: off', window: 0, present: [3, 4], reads: [[5, 5]], expect: [[]] },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(decide(c.window, c.present, c.reads), c.expect));
});
