/**
 * `prune` explains itself (issue 11 item 7) and a damaged refs.json loses no names (adversarial C05),
 * through the CLI with the shipped sample tars.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, expectExit, MULTIARCH_TAR } from './run.js';

describe('vmimg prune explains what it kept', () => {
  it('layers an export still hard-links are reported as kept, with how to free them', async () => {
    const cache = await tmpDir('vmimg-cli-prune-');
    const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];
    const loaded = JSON.parse((await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '--json', '-q'))).stdout) as { id: string; layers: number };
    const out = join(await tmpDir('vmimg-cli-prune-out-'), 'vm');
    await expectExit(0, c('export', out, loaded.id, '-q'));
    await expectExit(0, c('rm', loaded.id));
    const r = await expectExit(0, c('prune'));
    // Only the removed image's index, manifest and config blobs the load kept go.
    assert.match(r.stdout, /^freed \S+ \S+ \(0 layers, 3 blobs\)$/m);
    assert.match(
      r.stdout,
      new RegExp(`^kept \\S+ \\S+ in ${loaded.layers * 2} layer files no cached image uses: they are also hard-linked from outside the cache .*delete those exports to free it$`, 'm'),
    );
    const json = JSON.parse((await expectExit(0, c('prune', '--json'))).stdout) as { kept: { linked: { files: number; bytes: number } } };
    assert.equal(json.kept.linked.files, loaded.layers * 2);
  });
});

describe('push upload sessions in the cache', () => {
  it('a week-old session goes at once, a fresh one only with --partials', async () => {
    const cache = await tmpDir('vmimg-cli-prune-');
    const dir = join(cache, 'uploads', '0123456789abcdef');
    await mkdir(dir, { recursive: true });
    const [old, fresh] = [join(dir, `${'a'.repeat(64)}.json`), join(dir, `${'b'.repeat(64)}.json`)];
    for (const file of [old, fresh]) await writeFile(file, JSON.stringify({ location: 'http://127.0.0.1:1/v2/x/blobs/uploads/u', offset: 1 }));
    const eightDays = new Date(Date.now() - 8 * 24 * 3600 * 1000);
    await utimes(old, eightDays, eightDays);
    await expectExit(0, ['--cache-dir', cache, 'prune']);
    assert.deepEqual(await readdir(dir), [`${'b'.repeat(64)}.json`]);
    await expectExit(0, ['--cache-dir', cache, 'prune', '--partials']);
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('a damaged refs.json', () => {
  it('is rebuilt from the images’ own records: no name is lost', async () => {
    const cache = await tmpDir('vmimg-cli-prune-');
    const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];
    await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '-q'));
    await expectExit(0, c('load', AMD64_TAR, '-q'));
    const before = (await expectExit(0, c('images', '--json'))).stdout;
    await writeFile(join(cache, 'refs.json'), '{"version": 1, "refs": {"trunc');
    assert.deepEqual(JSON.parse((await expectExit(0, c('images', '--json'))).stdout), JSON.parse(before));
    assert.equal((await expectExit(0, c('cat', 'vmimg/busybox', '/etc/arch'))).stdout, 'amd64\n');
  });
});
