/**
 * yargs without its help renderer, for the runs that print no help text (all but `--help`). yargs' own
 * ESM entry builds its platform shim with cliui and string-width (an Intl.Segmenter and width tables at
 * import): ~60 of the ~90 ms of CPU that importing yargs cost every vmimg process. This is the same shim
 * (yargs 18's lib/platform-shims/esm.mjs) without those two, over yargs' factory, reached by path since
 * yargs' package.json "exports" does not list it: package-lock pins yargs, and an upgrade must re-check
 * this file (the CLI tests run both forms: every usage error here, every help text through yargs' entry).
 */
import { notStrictEqual, strictEqual } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import type yargs from 'yargs';

/** Whether yargs may render a help text for `argv`: `--help`, or `-h` alone or in a group of short flags. */
export function mayShowHelp(argv: readonly string[]): boolean {
  return argv.some((a) => a.startsWith('--help') || /^-[^-]*h/.test(a));
}

/** A shim part the lite yargs leaves out: using it is a bug (main routes every argv that may show help to yargs' entry). */
const leftOut = (what: string) => (): never => {
  throw new Error(`yargs-lite: yargs asked for ${what}, which this shim leaves out`);
};

/** yargs' factory with the lite shim; `import('yargs')` when help may be shown (see the file's comment). */
export async function loadYargs(argv: readonly string[]): Promise<typeof yargs> {
  if (mayShowHelp(argv)) return (await import('yargs')).default;
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('yargs/package.json'));
  const from = createRequire(join(dir, 'package.json')); // yargs' own dependencies, wherever npm put them
  const url = (path: string): string => pathToFileURL(path).href;
  const [{ YargsFactory }, { getProcessArgvBin }, parser, y18n, escalade] = await Promise.all([
    import(url(join(dir, 'build', 'lib', 'yargs-factory.js'))),
    import(url(join(dir, 'build', 'lib', 'utils', 'process-argv.js'))),
    import(url(from.resolve('yargs-parser'))),
    import(url(from.resolve('y18n'))),
    import(url(from.resolve('escalade/sync'))),
  ]);
  const mainFilename = dir.substring(0, dir.lastIndexOf('node_modules')); // as yargs' shim: where its package.json search starts
  return YargsFactory({
    assert: { notStrictEqual, strictEqual },
    cliui: leftOut('cliui (a help text)'),
    findUp: escalade.default,
    getEnv: (key: string) => process.env[key],
    inspect,
    getProcessArgvBin,
    mainFilename: mainFilename || process.cwd(),
    Parser: parser.default,
    path: { basename, dirname, extname, relative, resolve, join },
    process: {
      argv: () => process.argv,
      cwd: process.cwd,
      emitWarning: (warning: string, type: string) => process.emitWarning(warning, type),
      execPath: () => process.execPath,
      exit: (code: number) => process.exit(code),
      nextTick: process.nextTick,
      stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null,
    },
    readFileSync,
    readdirSync,
    require: from,
    getCallerFile: leftOut('the caller file (commandDir)'),
    stringWidth: leftOut('string widths (a help text)'),
    y18n: y18n.default({ directory: join(dir, 'locales'), updateFiles: false }),
  }) as typeof yargs;
}
