// The sources and tests as JavaScript, for `npm test` (test/helpers/run-tests.mjs) and time-files.mjs:
// every .ts under src/ and test/ transformed one by one by esbuild (as tsx does for each import, with
// the same isolated-module semantics) into test/.cache/js/, mirroring the tree. A test process then
// loads plain modules: under `--import tsx` each of the suite's ~140 processes spent 0.6-2 s of CPU
// in tsx's loader thread and source-map bookkeeping before its first test ran.
import { createRequire } from 'node:module';
import { readdirSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/helpers/js-build.mjs). */
export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Where the JavaScript goes: test/.cache/js/<path of the .ts with .js>. */
export const JS_DIR = join(ROOT, 'test', '.cache', 'js');

/** Every .ts file (not .d.ts) under `dir`, test/.cache skipped. */
function tsFiles(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (path !== join(ROOT, 'test', '.cache')) tsFiles(path, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/**
 * Writes JS_DIR afresh from src/ and test/ (linked source maps beside each file: run with
 * `--enable-source-maps` for stacks that name the .ts lines). esbuild comes with tsx, a dev dependency.
 */
export function buildJs() {
  const esbuild = createRequire(import.meta.url)('esbuild');
  rmSync(JS_DIR, { recursive: true, force: true });
  esbuild.buildSync({
    entryPoints: [...tsFiles(join(ROOT, 'src')), ...tsFiles(join(ROOT, 'test'))],
    outdir: JS_DIR,
    outbase: ROOT,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}

/** A test file's path (test/x/y.test.ts, relative to the root or absolute) as its built .js. */
export function builtPath(file) {
  const rel = relative(ROOT, resolve(ROOT, file));
  if (!rel.startsWith('test/') || !rel.endsWith('.ts')) throw new Error(`${file}: not a .ts file under test/`);
  return join(JS_DIR, rel.replace(/\.ts$/, '.js'));
}
