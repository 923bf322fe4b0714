/**
 * Every command's failure paths, one table: each row runs once for humans and once with --json and
 * checks the coded line (`vmimg: ERR_X: message`, at most one `hint:` line, no stack) and the JSON
 * object on stderr (`{"error":{"code","message","hint","exit"}}`, exit equal to the process's).
 * Failures no real input produces on demand (EMFILE, an internal RangeError) are injected into the
 * real CLI process by test/helpers/fault-fs.mjs.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from '../helpers/tools.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { AMD64_TAR, MULTIARCH_TAR, expectExit, vmimg, type CliResult } from './run.js';

const FAULT_FS = join(REPO_ROOT, 'test', 'helpers', 'fault-fs.mjs');

interface Fixture {
  cache: string;
  empty: string;
  image: string;
  notTar: string;
  full: string;
  missing: string;
}
let f: Fixture;

before(async () => {
  const work = await tmpDir('vmimg-cli-errors-');
  f = {
    cache: join(work, 'cache'),
    empty: join(work, 'empty-cache'),
    image: join(work, 'image'),
    notTar: join(work, 'notes.txt'),
    full: join(work, 'full'),
    missing: join(work, 'missing.tar'),
  };
  writeFileSync(f.notTar, 'hello\n');
  mkdirSync(f.full);
  writeFileSync(join(f.full, 'keep'), 'x');
  await expectExit(0, ['--cache-dir', f.cache, 'load', AMD64_TAR, '-q']);
  await expectExit(0, ['--cache-dir', f.cache, 'export', f.image, '-q']);
});

interface Row {
  what: string;
  args: (f: Fixture) => string[];
  code: string;
  exit: number;
  message?: RegExp;
  hint?: RegExp;
  env?: Record<string, string>;
  /** Another cache than the fixture's. */
  cache?: (f: Fixture) => string;
}

const fault = (error: string, match: string): Record<string, string> => ({
  NODE_OPTIONS: `--import ${FAULT_FS}`,
  FAULT_FS_ERROR: error,
  FAULT_FS_MATCH: match,
});

const ROWS: Row[] = [
  { what: 'no command', args: () => [], code: 'ERR_INVALID_ARGUMENT', exit: 2, hint: /vmimg --help/ },
  { what: 'an unknown command', args: () => ['run', 'x'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /unknown command "run"/ },
  { what: 'pull without REF', args: () => ['pull'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /^pull: missing REF/, hint: /vmimg pull --help/ },
  { what: 'pull of a bad reference', args: () => ['pull', 'Upper/Case'], code: 'ERR_INVALID_REFERENCE', exit: 2 },
  { what: 'pull --arch with --platform', args: () => ['pull', 'x', '--arch', 'amd64', '--platform', 'linux/amd64'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--arch and --platform/ },
  { what: 'pull of an unknown --arch', args: () => ['pull', 'x', '--arch', 'bogus'], code: 'ERR_INVALID_PLATFORM', exit: 2 },
  { what: 'pull --username without --password-stdin', args: () => ['pull', '127.0.0.1:1/x', '--username', 'u'], code: 'ERR_INVALID_ARGUMENT', exit: 2 },
  { what: 'pull from a closed port', args: () => ['pull', '127.0.0.1:1/x:1'], code: 'ERR_NETWORK', exit: 1 },
  { what: 'load of a missing tar', args: (x) => ['load', x.missing], code: 'ERR_NOT_FOUND', exit: 3 },
  { what: 'load of a text file', args: (x) => ['load', x.notTar], code: 'ERR_INVALID_ARCHIVE', exit: 1 },
  { what: 'load for a platform the tar lacks', args: () => ['load', AMD64_TAR, '--arch', 'arm64'], code: 'ERR_PLATFORM_MISMATCH', exit: 5 },
  { what: 'load --concurrency 0', args: () => ['load', AMD64_TAR, '--concurrency', '0'], code: 'ERR_INVALID_ARGUMENT', exit: 2, hint: /vmimg load --help/ },
  { what: 'load into a cache below a file', cache: (x) => join(x.notTar, 'c'), args: () => ['load', AMD64_TAR], code: 'ERR_IO', exit: 1, message: /ENOTDIR/ },
  { what: 'export with an empty cache', cache: (x) => x.empty, args: (x) => ['export', join(x.full, 'new')], code: 'ERR_NOT_FOUND', exit: 3, message: /no image/ },
  { what: 'export into a non-empty directory', args: (x) => ['export', x.full], code: 'ERR_DESTINATION_EXISTS', exit: 1 },
  { what: 'export --format bogus', args: (x) => ['export', x.full, '--format', 'bogus'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--format "bogus"/ },
  { what: 'export of a dir to stdout', args: () => ['export', '-'], code: 'ERR_INVALID_ARGUMENT', exit: 2 },
  { what: 'inspect without IMAGE', args: () => ['inspect'], code: 'ERR_INVALID_ARGUMENT', exit: 2, hint: /vmimg inspect --help/ },
  { what: 'images with an extra argument', args: () => ['images', 'x'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /unexpected argument "x"/ },
  { what: 'ls with an unknown option', args: (x) => ['ls', x.image, '--bogus'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /unknown option --bogus/ },
  { what: 'ls of a path the image lacks', args: (x) => ['ls', x.image, '/no/such'], code: 'ERR_NOT_FOUND', exit: 3, message: /^\/no\/such: no such file or directory in the image/ },
  { what: 'cat of a directory', args: (x) => ['cat', x.image, '/bin'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /EISDIR/ },
  { what: 'resolve of a missing path', args: (x) => ['resolve', x.image, '/no/such'], code: 'ERR_NOT_FOUND', exit: 3 },
  { what: 'rm of an unknown name', args: () => ['rm', 'nosuch:1'], code: 'ERR_NOT_FOUND', exit: 3 },
  { what: 'prune with an extra argument', args: () => ['prune', 'x'], code: 'ERR_INVALID_ARGUMENT', exit: 2 },
  { what: 'push of a missing tar', args: () => ['push', '/nonexistent/src.tar', '127.0.0.1:1/x:1'], code: 'ERR_NOT_FOUND', exit: 3, message: /nonexistent\/src\.tar/ },
  { what: 'push to an OCI layout', args: () => ['push', AMD64_TAR, 'oci:ol:t'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /names a path \(oci:\): push copies to a registry/, hint: /vmimg export oci:DIR/ },
  { what: 'push to a docker-archive tar (else a valid name and tag)', args: () => ['push', AMD64_TAR, 'docker-archive:x.tar'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /names a path \(docker-archive:\)/ },
  { what: 'an option given twice', args: () => ['pull', 'x', '--arch', 'amd64', '--arch', 'arm64'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--arch was given more than once/ },
  { what: 'a serve option given twice', args: () => ['serve', '--max-cache-size', '2M', '--max-cache-size', '3M'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--max-cache-size was given more than once/ },
  { what: 'serve on a bad --listen', args: () => ['serve', '--listen', 'nonsense'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--listen/ },
  { what: 'serve with a missing --htpasswd file', args: () => ['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--htpasswd', '/nonexistent/htpasswd'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--htpasswd \/nonexistent\/htpasswd: cannot read it/ },
  { what: 'validate of a bad reference', args: () => ['validate', 'Upper/Case'], code: 'ERR_INVALID_REFERENCE', exit: 2 },
  { what: 'validate of a text file', args: (x) => ['validate', x.notTar], code: 'ERR_INVALID_ARCHIVE', exit: 1 },
  { what: 'boot with too little --memory, before any pull', args: () => ['boot', '127.0.0.1:9/never/pulled:1', '--memory', '16'], code: 'ERR_INVALID_ARGUMENT', exit: 2, message: /--memory 16: a guest needs at least 48 MiB/ },
  { what: 'boot for a platform the tar lacks', args: () => ['boot', MULTIARCH_TAR, '--arch', 's390x'], code: 'ERR_PLATFORM_MISMATCH', exit: 5 },
  { what: 'an unexpected RangeError', args: (x) => ['ls', x.image], code: 'ERR_INTERNAL', exit: 70, env: fault('RangeError', '.idx'), message: /RangeError/, hint: /please report.*VMIMG_DEBUG=1/ },
  { what: 'an unexpected EEXIST', args: (x) => ['ls', x.image], code: 'ERR_INTERNAL', exit: 70, env: fault('EEXIST', '.idx'), hint: /please report/ },
  { what: 'too many open files (EMFILE)', args: (x) => ['cat', x.image, '/etc/arch'], code: 'ERR_IO', exit: 1, env: fault('EMFILE', '.idx'), hint: /ulimit -n/ },
  { what: 'a full disk (ENOSPC)', args: (x) => ['resolve', x.image, '/bin/sh'], code: 'ERR_IO', exit: 1, env: fault('ENOSPC', '.idx'), hint: /free space/ },
];

function checkHuman(row: Row, r: CliResult): void {
  assert.equal(r.code, row.exit, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  const last = lines.findIndex((l) => l.startsWith('vmimg: '));
  assert.ok(last >= 0, `a vmimg: line in ${r.stderr}`);
  const rest = lines.slice(last);
  assert.ok(rest.length <= 2, `one line and at most one hint: ${r.stderr}`);
  const m = /^vmimg: (ERR_[A-Z0-9_]+): (.+)$/.exec(rest[0]!);
  assert.ok(m, `coded line: ${rest[0]}`);
  assert.equal(m[1], row.code);
  if (row.message) assert.match(m[2]!, row.message);
  if (rest[1] !== undefined) assert.match(rest[1], /^hint: \S/);
  if (row.hint) assert.match(rest[1] ?? '', row.hint);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

function checkJson(row: Row, r: CliResult): void {
  assert.equal(r.code, row.exit, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  const objects = lines.map((l) => JSON.parse(l) as Record<string, unknown>); // every stderr line is JSON
  const errors = objects.filter((o) => 'error' in o);
  assert.equal(errors.length, 1, r.stderr);
  assert.equal(objects.at(-1), errors[0], 'the error is the last line');
  const e = errors[0]!.error as { code: string; message: string; hint: string | null; exit: number };
  assert.deepEqual(Object.keys(e).slice(0, 4), ['code', 'message', 'hint', 'exit']);
  assert.equal(e.code, row.code);
  assert.equal(e.exit, r.code);
  assert.ok(e.hint === null || typeof e.hint === 'string');
  if (row.message) assert.match(e.message, row.message);
  if (row.hint) assert.match(e.hint ?? '', row.hint);
}

/** Runs every row's two processes, a few at a time (they are independent), before the checks. */
function runAll(rows: Row[], parallel: number): Map<Row, Promise<[CliResult, CliResult]>> {
  const results = new Map<Row, Promise<[CliResult, CliResult]>>();
  const slots: Promise<unknown>[] = Array.from({ length: parallel }, () => Promise.resolve());
  rows.forEach((row, i) => {
    const args = ['--cache-dir', row.cache?.(f) ?? f.cache, ...row.args(f)];
    const env = row.env ?? {};
    const p = slots[i % parallel]!.then(() => Promise.all([vmimg(args, { env }), vmimg([...args, '--json'], { env })]));
    slots[i % parallel] = p.catch(() => undefined);
    results.set(row, p);
  });
  return results;
}

describe('every failure is one coded line, or one JSON object with --json', () => {
  let results: Map<Row, Promise<[CliResult, CliResult]>>;
  before(() => {
    results = runAll(ROWS, 2);
  });
  for (const row of ROWS) {
    it(`${row.what}: ${row.code}, exit ${row.exit}`, async () => {
      const [human, json] = await results.get(row)!;
      checkHuman(row, human);
      checkJson(row, json);
    });
  }

  it('VMIMG_DEBUG=1 adds the stack to the coded line', async () => {
    const r = await vmimg(['validate', 'Upper/Case'], { env: { VMIMG_DEBUG: '1' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^vmimg: ERR_INVALID_REFERENCE: /);
    assert.match(r.stderr, /\n\s+at /);
  });
});

describe('library errors are one family, across installed copies', () => {
  it('isVmimgError and instanceof recognise VmimgError and VfsError from another copy (dist/ vs src/)', async () => {
    const src = await import('../../src/index.js');
    const srcVfs = await import('../../src/vfs/index.js');
    const dist = (await import(join(REPO_ROOT, 'dist', 'index.js'))) as typeof src;
    const distVfs = (await import(join(REPO_ROOT, 'dist', 'vfs', 'index.js'))) as typeof srcVfs;
    assert.notEqual(dist.VmimgError, src.VmimgError, 'two copies of the module');
    const coded = new dist.VmimgError(dist.ErrorCode.NOT_FOUND, 'x');
    const vfs = new distVfs.VfsError('ENOENT', 'open', '/x');
    assert.ok(src.isVmimgError(coded) && src.isVmimgError(coded, src.ErrorCode.NOT_FOUND));
    assert.ok(coded instanceof src.VmimgError);
    assert.ok(src.isVmimgError(vfs), 'ContainerFS errors are vmimg errors');
    assert.ok(vfs instanceof srcVfs.VfsError && srcVfs.isVfsError(vfs, 'ENOENT'));
    assert.ok(!(vfs instanceof src.VmimgError), 'but not VmimgErrors: their code is an errno');
    assert.ok(!src.isVmimgError(new Error('x')) && !src.isVmimgError(Object.assign(new Error('x'), { code: 'ERR_NOT_FOUND' })));
    assert.ok(!src.isVmimgError(vfs, src.ErrorCode.NOT_FOUND));
  });
});
