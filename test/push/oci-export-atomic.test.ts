/**
 * `vmimg export DIR IMAGE --format oci` that fails part way (here: a full disk, a small tmpfs) leaves
 * nothing of its own: a new layout is written as a temp sibling and renamed into place at the end, so
 * neither DIR nor the sibling remains; an empty DIR stays empty; an existing layout keeps exactly the
 * files it had (the blobs this run added are removed) and skopeo still reads its image. Breaker4 F5:
 * blobs/ with 7 blobs and no index.json stayed. Needs root (mount -t tmpfs).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildBusyboxLayout, type BuiltImage } from '../helpers/busybox.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';
import { expectExit, vmimg } from '../cli/run.js';

let small: BuiltImage;
let big: BuiltImage;
let work: string;
let mnt: string;
let mounted = false;

before(async () => {
  requireTools(['skopeo', 'umoci']);
  [small, big, work] = await Promise.all([
    buildBusyboxLayout({ arch: 'amd64', tag: 'atomic-small', extraLayers: [{ files: { 'etc/which': 'small\n' } }] }),
    // 4 MiB of random bytes: a layer blob that cannot fit on the 3 MiB tmpfs
    buildBusyboxLayout({ arch: 'amd64', tag: 'atomic-big', extraLayers: [{ populate: (dir) => writeFileSync(join(dir, 'random.bin'), randomBytes(4 << 20)) }] }),
    tmpDir('vmimg-oci-atomic-'),
  ]);
  mnt = join(work, 'small-disk');
  mkdirSync(mnt);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]).catch((err: Error) => {
    throw new Error(`mounting a 3 MiB tmpfs needs root (run the tests as root, as .ci/run does): ${err.message}`);
  });
  mounted = true;
});

after(async () => {
  if (mounted) await run('umount', [mnt]);
});

const exportOci = (dest: string, image: BuiltImage) => vmimg(['--cache-dir', join(work, 'cache'), 'export', dest, `oci:${image.ref}`, '--format', 'oci']);

/** Every file under `dir` with its size, sorted. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const st = statSync(path);
      out.push(`${relative(dir, path)} ${st.isDirectory() ? 'dir' : st.size}`);
      if (st.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return out.sort();
}

function refusedForSpace(r: { code: number | null; stderr: string }): void {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /ERR_IO/);
  assert.match(r.stderr, /ENOSPC|no space/i);
}

describe('export --format oci on a full disk', () => {
  it('a new layout: neither DIR nor its temp sibling remains', async () => {
    refusedForSpace(await exportOci(join(mnt, 'new'), big));
    assert.deepEqual(readdirSync(mnt), []);
  });

  it('an empty DIR stays empty', async () => {
    mkdirSync(join(mnt, 'empty'));
    refusedForSpace(await exportOci(join(mnt, 'empty'), big));
    assert.deepEqual(readdirSync(mnt), ['empty']);
    assert.deepEqual(readdirSync(join(mnt, 'empty')), []);
  });

  it('an existing layout keeps exactly its files, and skopeo reads its image', async () => {
    const layout = join(mnt, 'layout');
    await expectExit(0, ['--cache-dir', join(work, 'cache'), 'export', layout, `oci:${small.ref}`, '--format', 'oci']);
    const before = listing(layout);
    refusedForSpace(await exportOci(layout, big));
    assert.deepEqual(listing(layout), before);
    assert.deepEqual(readdirSync(mnt).sort(), ['empty', 'layout']);
    const raw = await runBuffer('skopeo', ['inspect', '--raw', `oci:${layout}:atomic-small`]);
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, small.manifestDigest);
  });
});
