/**
 * The npm package as a user gets it: `npm pack`, then `npm ci --offline` into a scratch project (its
 * lockfile is the repo's, so every dependency comes from npm's local cache), then every entry point
 * imported from JavaScript (ESM) and type-checked from TypeScript with node16, nodenext and the classic
 * `node` resolution; README's quick start and library example run as written from the installed package.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cache.js';
import { RunError, requireTools, run, runFull, tmpDir, type RunOptions } from '../helpers/tools.js';

const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const TSX = join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const ENTRY_POINTS = ['vmimg', 'vmimg/vfs', 'vmimg/registry', 'vmimg/export'];

/** Runs a command and returns its exit code with its output (a failure is for the test to judge). */
async function attempt(cmd: string, args: string[], opts: RunOptions): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    return { code: 0, ...(await runFull(cmd, args, opts)) };
  } catch (err) {
    if (err instanceof RunError) return { code: err.exitCode, stdout: err.stdout, stderr: err.stderr };
    throw err;
  }
}

/** The TypeScript settings a user may have: [module, moduleResolution]. */
const CHECKS = [['node16', 'node16'], ['nodenext', 'nodenext'], ['esnext', 'node']] as const;

/**
 * Writes a tsconfig per setting (each checks its entry-<resolution>.ts; nodenext README's example.ts
 * too) for one `tsc -b` over all three: one process parses @types/node and the package's declarations
 * once (a tsc per check cost ~2.3 s of CPU each, 4 of them).
 */
function writeTypeChecks(example: string): void {
  const uses = ENTRY_POINTS.map((e, i) => `import * as m${i} from '${e}';`).join('\n');
  for (const [module, resolution] of CHECKS) {
    const entry = `entry-${resolution}.ts`;
    writeFileSync(join(project, entry), `${uses}\nconst fs: m1.ContainerFS | undefined = undefined;\nexport const ok: [typeof m0.pull, typeof m2.RegistryClient, typeof m3.exportImage, typeof fs] = [m0.pull, m2.RegistryClient, m3.exportImage, fs];\n`);
    const compilerOptions = { noEmit: true, strict: true, module, moduleResolution: resolution, target: 'es2022', typeRoots: [join(REPO_ROOT, 'node_modules', '@types')], types: ['node'], skipLibCheck: true };
    writeFileSync(join(project, `tsconfig.${resolution}.json`), JSON.stringify({ compilerOptions, files: resolution === 'nodenext' ? [entry, 'example.ts'] : [entry] }));
  }
  writeFileSync(join(project, 'example.ts'), example);
}

let checked: Promise<{ code: number | null; lines: string[] }> | undefined;
/** tsc's errors in `file`, and errors of no file (a bad tsconfig); the one `tsc -b` runs on first use. */
async function typeErrors(file: string): Promise<string[]> {
  checked ??= attempt(process.execPath, [TSC, '-b', ...CHECKS.map(([, r]) => `tsconfig.${r}.json`)], { cwd: project }).then((r) => ({
    code: r.code,
    lines: (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== ''),
  }));
  const { code, lines } = await checked;
  const files = ['example.ts', ...CHECKS.map(([, r]) => `entry-${r}.ts`)];
  const global = lines.filter((l) => /^error TS\d+:/.test(l));
  if (code !== 0 && global.length === 0 && !lines.some((l) => files.some((f) => l.startsWith(`${f}(`)))) return [`tsc -b exited ${code}: ${lines.join('\n')}`];
  return [...lines.filter((l) => l.startsWith(`${file}(`)), ...global];
}

let work: string;
let tarball: string;
let project: string;
let files: string[];

/** A lockfile for a project depending on the tarball alone: the repo's non-dev entries (all cached). */
function scratchLock(tgz: string): object {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
  const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: object; bin: object };
  const packages: Record<string, object> = {
    '': { name: 'scratch', dependencies: { vmimg: `file:${tgz}` } },
    'node_modules/vmimg': { version: root.version, resolved: `file:${tgz}`, dependencies: root.dependencies, bin: root.bin },
  };
  for (const [key, entry] of Object.entries(lock.packages)) if (key !== '' && !entry.dev && !entry.link) packages[key] = entry;
  return { name: 'scratch', lockfileVersion: 3, requires: true, packages };
}

before(async () => {
  requireTools(['tar', 'npm']);
  work = await tmpDir('vmimg-package-');
  const packed = JSON.parse(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: REPO_ROOT })) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, packed[0]!.filename);
  files = packed[0]!.files.map((f) => f.path);
  project = join(work, 'project');
  await run('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies: { vmimg: `file:${tarball}` } }));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(scratchLock(tarball)));
  await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: project });
  symlinkSync(join(REPO_ROOT, 'images'), join(project, 'images')); // README's sample paths, as in a clone
  writeTypeChecks(/### As a library[\s\S]*?```ts\n([\s\S]*?)```/.exec(README)?.[1] ?? '');
});

describe('the packed npm package', () => {
  it('ships the license, the VFS docs README links to, examples, and the sources its maps name', () => {
    for (const f of ['LICENSE', 'README.md', 'src/vfs/README.md', 'examples/walk.ts', 'examples/boot.ts', 'docs/FORMAT.md']) assert.ok(files.includes(f), `${f} is in the package`);
    assert.match(readFileSync(join(project, 'node_modules', 'vmimg', 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0, January 2004/);
    const maps = files.filter((f) => f.endsWith('.map'));
    assert.ok(maps.length > 50, `${maps.length} source maps`);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(project, 'node_modules', 'vmimg', map), 'utf8')) as { sources: string[] };
      for (const s of sources) assert.ok(files.includes(join(map, '..', s)), `${map} names ${s}, which is shipped`);
    }
  });

  it('imports every entry point from JavaScript (ESM)', async () => {
    const script = ENTRY_POINTS.map((e, i) => `import * as m${i} from '${e}';`).join('\n') + `
      const names = [${ENTRY_POINTS.map((_, i) => `Object.keys(m${i}).length`).join(', ')}];
      if (names.some((n) => n === 0)) throw new Error('an empty entry point: ' + names);
      if (typeof m0.loadFromTar !== 'function' || typeof m1.ContainerFS !== 'function') throw new Error('missing exports');
      if (!m0.isVmimgError(new m1.VfsError('ENOENT', 'open', '/x'))) throw new Error('one error family');
      console.log('ok', names.join(','));`;
    writeFileSync(join(project, 'entry.mjs'), script);
    assert.match(await run(process.execPath, ['entry.mjs'], { cwd: project }), /^ok \d+,\d+,\d+,\d+/);
  });

  for (const [module, resolution] of CHECKS) {
    it(`type-checks every entry point from TypeScript (module ${module}, moduleResolution ${resolution})`, async () => {
      assert.deepEqual(await typeErrors(`entry-${resolution}.ts`), []);
    });
  }

  it("README's library example runs as written (and type-checks)", async () => {
    const example = /### As a library[\s\S]*?```ts\n([\s\S]*?)```/.exec(README)?.[1];
    assert.ok(example, 'README has the library example');
    writeFileSync(join(project, 'example.mjs'), example);
    const out = await run(process.execPath, ['example.mjs'], { cwd: project, env: { ...process.env, VMIMG_CACHE_DIR: join(work, 'cache') } });
    assert.match(out, /^\/bin\/busybox\n/);
    assert.match(out, /^arch 100644$/m, '/etc/arch is listed with its mode');
    assert.deepEqual(await typeErrors('example.ts'), []);
  });

  it("README's quick start runs as written from the package, twice, and examples/walk.ts walks ./out", async () => {
    const section = README.slice(README.indexOf('## Try it offline'), README.indexOf('## Run the tests'));
    const lines = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n')).filter((l) => l.startsWith('npx vmimg') && !/ boot /.test(l));
    assert.ok(lines.length >= 3, lines.join('\n'));
    const env = { ...process.env, VMIMG_CACHE_DIR: join(work, 'cli-cache'), npm_config_offline: 'true' };
    for (let round = 1; round <= 2; round++) {
      for (const line of lines) {
        const [command, expected] = line.split(/\s+# → /);
        const r = await attempt('sh', ['-c', command!], { cwd: project, env });
        assert.equal(r.code, 0, `round ${round}: ${command}\n${r.stderr}`);
        if (expected !== undefined) assert.equal(r.stdout.trim(), expected.trim(), command);
      }
    }
    const walk = await attempt(process.execPath, ['--import', TSX, 'node_modules/vmimg/examples/walk.ts', './out'], { cwd: project });
    assert.equal(walk.code, 0, walk.stderr);
    assert.match(walk.stdout, / \/bin\/busybox$/m);
    assert.doesNotMatch(walk.stdout + walk.stderr, /not in the image/);
  });
});
