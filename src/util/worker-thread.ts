/** Starting a worker thread from a module next to the caller, in dist/ (.js) and under tsx (.ts) alike. */
import { createRequire } from 'node:module';
import { dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A Worker running the module `name` (without extension) that sits beside `callerUrl` (the caller's
 * `import.meta.url`). Under tsx (tests, benchmarks) the sources are `.ts`: the module and its imports
 * are bundled once by tsx's esbuild into one ES module the worker runs from a data: URL. (Loading tsx in
 * each worker instead cost ~300 ms of CPU per worker, which the benchmarks then measured.)
 */
export function startWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const ext = extname(fileURLToPath(callerUrl));
  const entry = new URL(`./${name}${ext}`, callerUrl);
  if (ext !== '.ts') return new Worker(entry, { execArgv: workerExecArgv(), ...options });
  // no execArgv: the bundle needs no loader, and an inherited `--import tsx` would load tsx in the worker
  return new Worker(new URL(`data:text/javascript;base64,${bundled(fileURLToPath(entry)).toString('base64')}`), { execArgv: [], ...options });
}

/**
 * The process's node options for a worker, less `--input-type`: a program run by `node --input-type=module
 * -e` (or from stdin) has it, workers inherit it by default, and a worker refuses it ("--input-type can
 * only be used with string input"): every hash and inflate worker failed.
 */
function workerExecArgv(): string[] {
  const argv = process.execArgv;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--input-type') i++; // and its value
    else if (!argv[i]!.startsWith('--input-type=')) out.push(argv[i]!);
  }
  return out;
}

const bundles = new Map<string, Buffer>();

/** The module at `path` with its imports bundled in (node: builtins stay imports), made once per process. */
function bundled(path: string): Buffer {
  let code = bundles.get(path);
  if (code === undefined) {
    // esbuild comes with tsx (a dev dependency): this path only runs when the sources run under tsx.
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
    const out = esbuild.buildSync({ entryPoints: [path], bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, absWorkingDir: dirname(path), logLevel: 'silent' });
    code = Buffer.from(out.outputFiles[0]!.contents);
    bundles.set(path, code);
  }
  return code;
}
