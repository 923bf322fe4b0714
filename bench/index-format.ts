/** Times encode/decode of a 100k-entry index (run: node --import tsx bench/index-format.ts). */
import { createHash } from 'node:crypto';
import { encodeIndex, decodeIndex } from '../src/layer/index-format.js';
import { EntryType, type IndexEntry } from '../src/layer/entry.js';

const N = Number(process.argv[2] ?? 100_000);
const entries: IndexEntry[] = [];
for (let i = 0; i < N; i++) {
  const file = i % 10 !== 0;
  entries.push({
    type: file ? EntryType.File : EntryType.Dir,
    path: `usr/share/doc/package-${Math.floor(i / 10)}/${file ? `file-${i}.txt` : ''}`.replace(/\/$/, ''),
    mode: file ? 0o100644 : 0o040755,
    uid: 0, gid: 0, mtimeSec: 1700000000 + i, mtimeNsec: 0,
    size: file ? 1000 : 0, offset: file ? i * 4096 : 0,
    ...(file ? { sha256: createHash('sha256').update(String(i)).digest('hex') } : {}),
    devMajor: 0, devMinor: 0,
  });
}
const header = { diffId: `sha256:${'a'.repeat(64)}`, contentsSize: N * 4096, compressedSize: 0, tarSize: 0 };
let t = performance.now();
const buf = encodeIndex(header, entries);
const encMs = performance.now() - t;
const runs: number[] = [];
const cpu: number[] = [];
for (let r = 0; r < 5; r++) {
  const c = process.cpuUsage();
  t = performance.now();
  decodeIndex(buf);
  runs.push(performance.now() - t);
  cpu.push(process.cpuUsage(c).user / 1000);
}
// CPU time is shown too: wall time is noisy on a shared machine (GC runs on helper threads, though).
console.log(`entries=${N} bytes=${buf.length} encode=${encMs.toFixed(1)}ms`);
console.log(`decode: first ${runs[0]!.toFixed(1)}ms wall / ${cpu[0]!.toFixed(1)}ms cpu; best of 5 ${Math.min(...runs).toFixed(1)}ms wall`);
