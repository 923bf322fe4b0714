#!/usr/bin/env node
// Runs test files the way `npm test` does (each built file in its own `node --test` process, N at a time, in
// the order given) and prints each file's wall and CPU time (user + sys of the file's process tree, from
// /usr/bin/time), longest first: with --test-concurrency=2 the suite ends when the longest chain of files
// ends, and on 2 cores the CPU total bounds it. Build dist/ first (the CLI tests run it). --tsx runs the
// sources under tsx instead (as `npm test` did before test/helpers/run-tests.mjs), as does a checkout without js-build.mjs.
//   node test/helpers/time-files.mjs [-j 2] [-o table.txt] [--tsx] test/*/*.test.ts
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
let jobs = 2;
let out;
let tsx = false;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-j') jobs = Number(args[++i]);
  else if (args[i] === '-o') out = args[++i];
  else if (args[i] === '--tsx') tsx = true;
  else files.push(args[i]);
}
if (files.length === 0 || !(jobs >= 1)) {
  console.error('usage: node test/helpers/time-files.mjs [-j N] [-o FILE] TEST_FILE...');
  process.exit(2);
}

const scratch = mkdtempSync(join(tmpdir(), 'vmimg-time-files-'));

/** A file's checkout: its own tsx, tsconfig, dist/ and build (two checkouts' files can be timed side by side). */
const rootOf = (file) => (file.includes('/test/') ? file.slice(0, file.lastIndexOf('/test/')) || '/' : process.cwd());
/** Per file: its built .js (each checkout built once, before the clock starts), or undefined to run it under tsx. */
const built = new Map();
for (const root of new Set(files.map(rootOf))) {
  const builder = join(root, 'test', 'helpers', 'js-build.mjs');
  if (tsx || !existsSync(builder)) continue;
  const { buildJs, builtPath } = await import(pathToFileURL(builder).href);
  buildJs();
  for (const f of files) if (rootOf(f) === root) built.set(f, builtPath(join(root, f.startsWith('/') ? f.slice(root.length + 1) : f)));
}

/** Runs one file; resolves to its row (wall and CPU seconds, pass/fail counts from the TAP summary). */
function runFile(file, n) {
  const timeOut = join(scratch, `${n}.time`);
  return new Promise((resolve) => {
    const started = Date.now();
    const js = built.get(file);
    const node = js !== undefined ? ['--enable-source-maps', '--test', '--test-reporter=tap', js] : ['--import', 'tsx', '--test', '--test-reporter=tap', file];
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeOut, process.execPath, ...node], {
      cwd: rootOf(file),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tap = '';
    child.stdout.on('data', (b) => (tap += b));
    child.stderr.on('data', () => {});
    child.on('close', (code) => {
      const wall = (Date.now() - started) / 1000;
      const [user, sys] = readFileSync(timeOut, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? NaN);
      const row = { file, wall, cpu: user + sys, pass: count('pass'), fail: count('fail'), code };
      if (code !== 0) row.failures = tap.split('\n').filter((l) => /^\s*not ok/.test(l)).join('\n');
      process.stderr.write(`${wall.toFixed(1).padStart(7)} s  ${file}${code !== 0 ? `  FAILED (exit ${code})` : ''}\n`);
      resolve(row);
    });
  });
}

const started = Date.now();
const rows = [];
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(jobs, files.length) }, async () => {
    while (next < files.length) {
      const n = next++;
      rows.push(await runFile(files[n], n));
    }
  }),
);
rmSync(scratch, { recursive: true, force: true });

const total = (Date.now() - started) / 1000;
const cpu = rows.reduce((s, r) => s + r.cpu, 0);
const pass = rows.reduce((s, r) => s + r.pass, 0);
const fail = rows.reduce((s, r) => s + (r.fail || 0), 0);
rows.sort((a, b) => b.wall - a.wall);
const lines = [
  `${files.length} files, -j ${jobs}: wall ${total.toFixed(1)} s, CPU ${cpu.toFixed(1)} s, ${pass} pass, ${fail} fail`,
  '  wall s   CPU s  tests  file',
  ...rows.map((r) => `${r.wall.toFixed(1).padStart(8)}  ${r.cpu.toFixed(1).padStart(6)}  ${String(r.pass + (r.fail || 0)).padStart(5)}  ${r.file}${r.code !== 0 ? `  FAILED\n${r.failures}` : ''}`),
];
if (out !== undefined) writeFileSync(out, `${lines.join('\n')}\n`);
console.log(lines.join('\n'));
process.exitCode = rows.some((r) => r.code !== 0) ? 1 : 0;
