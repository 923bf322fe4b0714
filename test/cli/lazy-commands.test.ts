/**
 * Command modules load only when their command runs (src/cli/commands/index.ts): a short command must
 * not import the pull pipeline, the exporters or the HTTP client (that cost every process ~0.5 CPU-s).
 * Judged by the modules the process actually loads (a module-loader hook logs each URL), not by time.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tmpDir } from '../helpers/tools.js';
import { commandLoaders, commandNames } from '../../src/cli/commands/index.js';
import { mayShowHelp } from '../../src/cli/yargs-lite.js';
import { MULTIARCH_TAR, expectExit } from './run.js';

let dir: string;
let cache: string;
let hook: string;
before(async () => {
  dir = await tmpDir('vmimg-lazy-commands-');
  cache = join(dir, 'cache');
  const hooks = join(dir, 'hooks.mjs');
  // every module URL the process loads, ESM and the CommonJS entry points it imports, on stderr
  await writeFile(hooks, "export async function load(url, ctx, next) { process.stderr.write(`LOADED ${url}\\n`); return next(url, ctx); }\n");
  hook = join(dir, 'register.mjs');
  await writeFile(hook, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  await expectExit(0, ['load', MULTIARCH_TAR, '--arch', 'amd64', '-q', '--cache-dir', cache]);
});

/** The dist/ and node_modules/ modules `vmimg ARGS` loads. */
async function loaded(args: string[]): Promise<string[]> {
  const r = await expectExit(0, ['--cache-dir', cache, ...args], { env: { NODE_OPTIONS: `--import ${hook}` } });
  return [...r.stderr.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1]!).filter((u) => u.includes('/dist/') || u.includes('/node_modules/'));
}

const HEAVY = [/\/dist\/image\/pull\.js$/, /\/dist\/image\/load\.js$/, /\/dist\/export\/(?!walk\.js)/, /\/dist\/registry\/client\.js$/, /\/node_modules\/undici\//, /\/node_modules\/tar-stream\//, /\/node_modules\/pako\//];

describe('lazy command modules', () => {
  it('every loader loads the command it is named after', async () => {
    for (const name of commandNames) assert.equal(String((await commandLoaders[name]!()).command).split(' ')[0], name);
  });

  it('--version, images, ls and cat of a cached image load neither the pipelines, the exporters nor undici', async () => {
    const id = JSON.parse((await expectExit(0, ['images', '--json', '--cache-dir', cache])).stdout)[0].id as string;
    for (const args of [['--version'], ['images'], ['ls', id, '/bin'], ['cat', id, '/etc/arch']]) {
      const modules = await loaded(args);
      assert.ok(modules.some((u) => u.endsWith('/dist/cli/main.js')), `the hook saw ${args.join(' ')} load nothing`);
      const heavy = modules.filter((u) => HEAVY.some((h) => h.test(u)));
      assert.deepEqual(heavy, [], `vmimg ${args.join(' ')} loaded ${heavy.join(', ')}`);
      const commands = modules.filter((u) => /\/dist\/cli\/commands\/(?!index|common)/.test(u));
      assert.ok(commands.length <= 1, `vmimg ${args.join(' ')} loaded ${commands.length} command modules`);
    }
  });

  it("a run that shows no help loads yargs without its help renderer (cliui, string-width); -qh and --help=true still show help", async () => {
    const modules = await loaded(['images']);
    assert.ok(modules.some((u) => u.includes('/node_modules/yargs/')), 'yargs is loaded');
    assert.deepEqual(modules.filter((u) => /\/node_modules\/(cliui|string-width)\//.test(u)), []);
    for (const args of [['ls', '-qh'], ['ls', '--help=true']]) assert.match((await expectExit(0, args)).stdout, /^vmimg ls <image> \[path\]$/m, args.join(' '));
    const cases: [string[], boolean][] = [[['-h'], true], [['ls', '-qh'], true], [['ls', '--help'], true], [['ls', '--help=true'], true], [['ls', '-q', '/x'], false], [['ls', '--no-help'], false], [['pull', 'x', '--arch', 'amd64'], false]];
    for (const [argv, may] of cases) assert.equal(mayShowHelp(argv), may, argv.join(' '));
  });

  it('the overview help still lists every command', async () => {
    const help = (await expectExit(0, ['--help'])).stdout;
    for (const name of commandNames) assert.match(help, new RegExp(`^  vmimg ${name}\\b`, 'm'));
  });
});
