/**
 * Paths vs references: an IMAGE/REF/TAR argument that looks like a path (or names an existing file or
 * directory) is a path, and a missing one is ERR_NOT_FOUND naming it — no registry is contacted (a
 * pull would print "image: resolving" and fail with a network error here). `docker://` forces a
 * reference, `oci-archive:`/`docker-archive:` a tar.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, MULTIARCH_TAR, expectExit, vmimg } from './run.js';

let cache: string;
let work: string;
before(async () => {
  cache = await tmpDir('vmimg-cli-paths-');
  work = await tmpDir('vmimg-cli-paths-work-');
  mkdirSync(join(work, 'not-an-image'));
});

const TYPOS = ['missing.tar', 'missing.tar.gz', 'missing.tgz', './missing-dir', '../missing', '/no/such/dir', '~/vmimg-missing.tar', 'oci-archive:/no/such.tar'];
const COMMANDS: [string, (p: string) => string[]][] = [
  ['ls', (p) => ['ls', p]],
  ['cat', (p) => ['cat', p, '/etc/arch']],
  ['resolve', (p) => ['resolve', p, '/bin/sh']],
  ['validate', (p) => ['validate', p]],
  ['inspect', (p) => ['inspect', p]],
  ['inspect --platforms', (p) => ['inspect', p, '--platforms']],
  ['export', (p) => ['export', '-', p, '--format', 'tar']],
  ['boot', (p) => ['boot', p]],
  ['pull', (p) => ['pull', p]],
  ['load', (p) => ['load', p]],
];

describe('a typo\'d path is not found, never a registry reference', () => {
  // every command meets three of the typos, and every typo meets several commands (keeps the spawn count low)
  COMMANDS.forEach(([name, args], n) => {
    const typos = [0, 1, 2].map((k) => TYPOS[(n * 3 + k) % TYPOS.length]!);
    it(`${name}: a missing path (${typos.join(', ')}) is ERR_NOT_FOUND naming it`, async () => {
      const results = await Promise.all(typos.map((p) => vmimg(['--cache-dir', cache, ...args(p)])));
      results.forEach((r, i) => {
        const typo = typos[i]!;
        assert.equal(r.code, 3, `${name} ${typo}: ${r.stderr}`);
        const shown = typo.replace(/^oci-archive:/, '').replace(/^~/, '');
        assert.match(r.stderr, /^vmimg: ERR_NOT_FOUND: .*: no such file or directory$/m);
        assert.ok(r.stderr.includes(shown), `${name} ${typo} names the path: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /resolving|pulling|connection/, 'nothing was contacted');
      });
    });
  });

  it('an existing directory is a path: an image directory, or ERR_INVALID_IMAGE (never "bad registry")', async () => {
    for (const args of [['inspect', join(work, 'not-an-image')], ['inspect', join(work, 'not-an-image'), '--platforms'], ['boot', join(work, 'not-an-image')]]) {
      const r = await expectExit(1, ['--cache-dir', cache, ...args]);
      assert.match(r.stderr, /^vmimg: ERR_INVALID_IMAGE: .*not-an-image/m);
    }
    const dir = join(work, 'img');
    await expectExit(0, ['--cache-dir', cache, 'export', dir, AMD64_TAR, '-q']);
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'inspect', dir, '--platforms'])).stdout, 'linux/amd64\n');
  });

  it('pull refuses a path, load refuses a reference or a directory', async () => {
    assert.match((await expectExit(2, ['pull', AMD64_TAR])).stderr, /is a file, not a registry reference\nhint: vmimg load /);
    assert.match((await expectExit(2, ['load', 'docker://alpine'])).stderr, /is a registry reference, not an image tar\nhint: vmimg pull alpine/);
    assert.match((await expectExit(2, ['load', work])).stderr, /is a directory, not an image tar/);
  });

  it('prefixes force the choice: docker:// a reference, oci-archive: / docker-archive: a tar', async () => {
    assert.equal((await expectExit(0, ['validate', 'docker://alpine.tar'])).stdout, 'docker.io/library/alpine.tar:latest\n');
    assert.equal((await expectExit(0, ['validate', 'docker.io/library/x.tgz'])).stdout, 'docker.io/library/x.tgz:latest\n');
    const arm = await expectExit(0, ['--cache-dir', cache, 'cat', `oci-archive:${MULTIARCH_TAR}`, '/etc/arch', '--arch', 'arm64', '-q']);
    assert.equal(arm.stdout, 'arm64\n');
    const amd = await expectExit(0, ['--cache-dir', cache, 'cat', `docker-archive:${AMD64_TAR}`, '/etc/arch', '-q']);
    assert.equal(amd.stdout, 'amd64\n');
  });
});
