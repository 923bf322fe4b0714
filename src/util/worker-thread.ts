/** Starting a worker thread from a module next to the caller, in dist/ (.js) and under tsx (.ts) alike. */
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A Worker running the module `name` (without extension) that sits beside `callerUrl` (the caller's
 * `import.meta.url`). Under tsx (tests, benchmarks) the sources are `.ts`, and a worker does not
 * inherit tsx's loader: it registers it itself before importing the module.
 */
export function startWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const ext = extname(fileURLToPath(callerUrl));
  const entry = new URL(`./${name}${ext}`, callerUrl);
  if (ext !== '.ts') return new Worker(entry, options);
  const api = join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs');
  const code = `import(${JSON.stringify(pathToFileURL(api).href)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { ...options, eval: true });
}
