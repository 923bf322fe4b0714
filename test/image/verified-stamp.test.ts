// A cached layer is checked in full once, then trusted by its stamp while its files are unchanged
// (docs/DECISIONS.md). What the stamp cannot see — an edit that puts the old mtime back, like bit rot —
// `validate` finds (and reading /etc/passwd for the config), and the next load then checks in full and
// converts the layer again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { loadFromTar, verifyImage } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { ErrorCode, isVmimgError } from '../../src/errors.js';
import type { ProgressEvent } from '../../src/image/progress.js';
import { tmpDir } from '../helpers/tools.js';
import { MULTIARCH_TAR } from '../cli/run.js';

/** Flips one byte of `needle` in the `.contents` holding it; `keepMtime` puts the old mtime back. */
function flip(dir: string, needle: string, keepMtime: boolean): string {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.contents'))) {
    const path = join(dir, f);
    const data = readFileSync(path);
    const i = data.indexOf(needle);
    if (i < 0) continue;
    const ref = `${path}.mtime`;
    if (keepMtime) execFileSync('touch', ['-r', path, ref]); // GNU touch keeps the nanoseconds
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([data[i + 1]! ^ 0x20]), 0, 1, i + 1);
    closeSync(fd);
    if (keepMtime) {
      execFileSync('touch', ['-r', ref, path]);
      rmSync(ref);
    }
    return f;
  }
  throw new Error(`"${needle}" is in no .contents of ${dir}`);
}

test('a stamped layer is trusted while its files are unchanged; validate finds what the stamp cannot, and the next load repairs it', async () => {
  const cacheDir = await tmpDir('vmimg-stamp-');
  const platform = parsePlatform('arm64');
  const warnings: string[] = [];
  const onProgress = (e: ProgressEvent): void => {
    if (e.type === 'warning') warnings.push(e.message);
  };
  const image = await loadFromTar(MULTIARCH_TAR, { cacheDir, platform });
  const layers = join(cacheDir, 'layers', 'sha256');
  const stamps = readdirSync(layers).filter((n) => n.endsWith('.verified'));
  assert.equal(stamps.length, readdirSync(layers).filter((n) => n.endsWith('.idx')).length, 'every flattened layer is stamped');

  // An in-place edit that changes the mtime: the stamp no longer matches, the load checks and repairs.
  flip(layers, 'root:x:0:0', false);
  await loadFromTar(MULTIARCH_TAR, { cacheDir, platform, onProgress });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /the cached copy is damaged .*\/etc\/passwd.*converting it again/);
  await verifyImage(image);

  // An edit that puts the old mtime back: the stamp still matches, so the load trusts the layer...
  warnings.length = 0;
  flip(layers, 'BusyBox v', true);
  await loadFromTar(MULTIARCH_TAR, { cacheDir, platform, onProgress });
  assert.deepEqual(warnings, []);
  // ...validate reads every byte and fails, and that makes the next load check in full and repair.
  await assert.rejects(verifyImage(image), (err: Error) => isVmimgError(err, ErrorCode.DIGEST_MISMATCH));
  await loadFromTar(MULTIARCH_TAR, { cacheDir, platform, onProgress });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /the cached copy is damaged .*busybox/);
  await verifyImage(image);

  // A file the runtime config reads is checked as it is read: damaged bytes never become a uid, and
  // the next load repairs the layer.
  warnings.length = 0;
  flip(layers, 'root:x:0:0', true);
  await assert.rejects(loadFromTar(MULTIARCH_TAR, { cacheDir, platform, onProgress }), (err: Error) =>
    isVmimgError(err, ErrorCode.DIGEST_MISMATCH) && /\/etc\/passwd/.test(err.message),
  );
  await loadFromTar(MULTIARCH_TAR, { cacheDir, platform, onProgress });
  assert.match(warnings.join('\n'), /the cached copy is damaged .*\/etc\/passwd.*converting it again/);
  const check = await verifyImage(image);
  assert.ok(check.files > 0);
});
