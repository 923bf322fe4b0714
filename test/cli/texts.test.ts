/**
 * Small texts a new user reads (issue 11 item 9): inspect's user/env/entry counts, one digest
 * message, id prefixes that say they need 6 hex digits, export after the newest image was removed,
 * one spelling of arm64, mismatch hints in the flag the user typed, out/ ignored by git.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTool, tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, BIN, MULTIARCH_TAR, expectExit } from './run.js';

let cache: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

before(async () => {
  cache = await tmpDir('vmimg-cli-texts-');
});

describe('small texts', () => {
  it('inspect: one user line, no empty headings, "1 entry"', async () => {
    const out = (await expectExit(0, c('inspect', AMD64_TAR, '-q'))).stdout;
    assert.match(out, /^user: +\S.*\(uid 0, gid 0\)$/m);
    assert.doesNotMatch(out, /\(root\) \(/);
    assert.doesNotMatch(out, /\b1 entries\b/);
    assert.doesNotMatch(out, /^env:\n(?! )/m, 'an env: heading has entries under it');
    assert.match(out, /^ +\d+\. sha256:[0-9a-f]{64} +.*\b\d+ (entry|entries)\b/m);
  });

  it('a bad digest is named once', async () => {
    const r = await expectExit(2, ['validate', 'alpine@sha256:abc']);
    assert.match(r.stderr, /^vmimg: ERR_INVALID_REFERENCE: invalid reference "alpine@sha256:abc": invalid digest "sha256:abc": /);
    assert.doesNotMatch(r.stderr, /bad digest/);
  });

  it('rm of a short id prefix says ids need 6 hex digits', async () => {
    const r = await expectExit(3, c('rm', 'abc'));
    assert.match(r.stderr, /\nhint: an image id prefix needs at least 6 hex digits/);
  });

  it('export after rm of the newest image exports the next most recent, not "nothing pulled yet"', async () => {
    const older = JSON.parse((await expectExit(0, c('load', AMD64_TAR, '--json', '-q'))).stdout) as { id: string };
    const newest = JSON.parse((await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '--json', '-q'))).stdout) as { id: string };
    await expectExit(0, c('rm', newest.id));
    const r = await expectExit(0, c('export', join(await tmpDir('vmimg-cli-texts-out-'), 'vm')));
    assert.match(r.stdout, new RegExp(`^exported ${older.id} \\(linux/amd64\\)`));
  });

  it('arm64 is spelled linux/arm64 everywhere the CLI prints a platform', async () => {
    const platforms = (await expectExit(0, ['inspect', MULTIARCH_TAR, '--platforms'])).stdout;
    assert.match(platforms, /^linux\/arm64\t/m);
    assert.doesNotMatch(platforms, /arm64\/v8/);
    const loaded = (await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64'))).stdout;
    assert.match(loaded, /^platform: linux\/arm64$/m);
    assert.doesNotMatch((await expectExit(0, c('images'))).stdout, /arm64\/v8/);
  });

  it('a platform mismatch hint uses the flag that was typed', async () => {
    const arch = await expectExit(5, c('load', AMD64_TAR, '--arch', 'arm64'));
    assert.match(arch.stderr, /\nhint: use --arch amd64, or pick an image built for /);
    assert.doesNotMatch(arch.stderr, /--platform/);
    const multi = await expectExit(5, c('load', MULTIARCH_TAR, '--arch', 's390x'));
    assert.match(multi.stderr, /\nhint: .*--arch/);
    assert.doesNotMatch(multi.stderr, /hint: .*--platform/);
    const platform = await expectExit(5, c('load', AMD64_TAR, '--platform', 'linux/arm64'));
    assert.match(platform.stderr, /\nhint: .*--platform/);
  });

  it('the quick start output directory is ignored by git', () => {
    assert.match(readFileSync(join(REPO_ROOT, '.gitignore'), 'utf8'), /^\/?out\/$/m);
  });
});

describe('progress a user can match and read', () => {
  it('inspect names each layer by diff_id and by the blob digest progress shows', async () => {
    const load = await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64')); // stderr is a pipe: one line per state
    const blobs = [...load.stderr.matchAll(/^layer \d\/3 ([0-9a-f]{12}): /gm)].map((m) => m[1]);
    const out = (await expectExit(0, c('inspect', MULTIARCH_TAR, '--arch', 'arm64', '-q'))).stdout;
    for (const blob of new Set(blobs)) assert.match(out, new RegExp(`^ +\\d\\. sha256:[0-9a-f]{64} .*, blob ${blob}$`, 'm'));
  });

  it('at 60 columns the bars fit: no line cut, the layer count and speed column stay', async () => {
    const script = requireTool('script', 'bsdutils');
    const command = `stty cols 60; '${process.execPath}' '${BIN}' --cache-dir '${await tmpDir('vmimg-cli-narrow-')}' load '${MULTIARCH_TAR}' --arch arm64`;
    const screen = await new Promise<string>((resolve, reject) => {
      const child = spawn(script, ['-qfec', command, '/dev/null'], { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1', TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.on('error', reject);
      child.on('close', () => resolve(Buffer.concat(out).toString('utf8')));
    });
    // eslint-disable-next-line no-control-regex
    const lines = screen.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '\n').split(/[\r\n]+/).filter((l) => /[\u2588\u2591]/.test(l));
    assert.ok(lines.length > 0, screen);
    for (const l of lines) assert.ok([...l.trimEnd()].length <= 60, `${[...l].length} columns: ${l}`);
    assert.ok(lines.some((l) => /^total +done +[\u2588]+ 3\/3 layers/.test(l)), lines.join('\n'));
  });
});
