#!/usr/bin/env node
// `npm test`: builds the sources and tests as JavaScript (js-build.mjs), then runs `node --test` over the
// built test files, its summary and exit code as they are. Options before the files go to node;
// files are given as their .ts paths (default: every test/*/*.test.ts).
//   node test/helpers/run-tests.mjs [--test-concurrency=2 ...] [test/x/y.test.ts ...]
// One file alone, from its source: node --import tsx --test test/x/y.test.ts (dist/ built first for the CLI tests).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { buildJs, builtPath, ROOT } from './js-build.mjs';

const args = process.argv.slice(2);
const nodeArgs = args.filter((a) => a.startsWith('-'));
let files = args.filter((a) => !a.startsWith('-'));
if (files.length === 0) {
  const test = join(ROOT, 'test');
  files = readdirSync(test, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .flatMap((d) => readdirSync(join(test, d.name)).filter((n) => n.endsWith('.test.ts')).map((n) => join('test', d.name, n)));
}
buildJs();
// --enable-source-maps: a failure's stack names the .ts lines (the test processes inherit it, the CLI's do not)
const child = spawn(process.execPath, ['--enable-source-maps', '--test', ...nodeArgs, ...files.map(builtPath)], { cwd: ROOT, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  process.exitCode = code ?? 128 + (constants.signals[signal] ?? 0);
});
