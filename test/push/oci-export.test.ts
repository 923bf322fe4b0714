/**
 * `vmimg export DIR IMAGE --format oci` into OCI image layouts, judged by skopeo (`inspect --raw`
 * hashes to the source digest) and umoci: the ref name comes from the source (`oci:DIR:TAG`, a tar's
 * or layout's own name), an existing name is never replaced silently (ERR_DESTINATION_EXISTS unless
 * --force), `--all` copies the whole index, a `blobs/` symlinked out of the layout is refused, and
 * `oci:PATH:TAG` splits at the colon that leaves an existing directory (paths may hold `:`).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxLayout, buildMultiArchLayout, toDockerArchive, toOciArchive, type BuiltImage, type MultiArchImage } from '../helpers/busybox.js';
import { requireTools, runBuffer, tmpDir } from '../helpers/tools.js';
import { describeTree, diffTrees, umociRootfs } from '../export/compare.js';
import { expectExit, vmimg } from '../cli/run.js';

let image: BuiltImage;
let other: BuiltImage;
let multi: MultiArchImage;
let work: string;
let cache: string[];

before(async () => {
  requireTools(['skopeo', 'umoci']);
  [image, other, multi, work] = await Promise.all([
    buildBusyboxLayout({ arch: 'amd64', tag: 'ociexp', extraLayers: [{ files: { 'etc/which': 'one\n' } }] }),
    buildBusyboxLayout({ arch: 'amd64', tag: 'ociexp2', extraLayers: [{ files: { 'etc/which': 'two\n' } }] }),
    buildMultiArchLayout('ociexpall'),
    tmpDir('vmimg-oci-export-'),
  ]);
  cache = ['--cache-dir', join(work, 'cache')];
});

async function rawDigest(ref: string): Promise<string> {
  const raw = await runBuffer('skopeo', ['inspect', '--raw', `oci:${ref}`]);
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

function refNames(dir: string): Record<string, string> {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return Object.fromEntries(index.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'] ?? '', m.digest]));
}

const exportOci = (args: string[]) => vmimg([...cache, 'export', ...args, '--format', 'oci', '--json']);

describe('export --format oci', () => {
  it('names the image by the source: oci:DIR:TAG gives TAG, a docker save tar its RepoTag', async () => {
    const out = join(work, 'named');
    const r = await expectExit(0, [...cache, 'export', out, `oci:${image.ref}`, '--format', 'oci', '--json']);
    assert.equal((JSON.parse(r.stdout) as { refName: string }).refName, 'ociexp');
    assert.equal(await rawDigest(`${out}:ociexp`), image.manifestDigest);
    const tar = await toDockerArchive(other, join(work, 'other.tar'), 'busybox:saved');
    await expectExit(0, [...cache, 'export', out, tar, '--format', 'oci']);
    assert.deepEqual(Object.keys(refNames(out)).sort(), ['ociexp', 'saved']);
  });

  it('refuses to replace a ref name naming another image (ERR_DESTINATION_EXISTS) unless --force; the same image again is fine', async () => {
    const out = join(work, 'replace');
    await expectExit(0, [...cache, 'export', out, `oci:${image.ref}`, '--format', 'oci']);
    await expectExit(0, [...cache, 'export', out, `oci:${image.ref}`, '--format', 'oci']);
    // `oci:OUT:ociexp` as DEST names the entry: another image under a taken name
    const refused = await exportOci([`oci:${out}:ociexp`, `oci:${other.ref}`]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /ERR_DESTINATION_EXISTS/);
    assert.ok(refused.stderr.includes('ociexp') && refused.stderr.includes(image.manifestDigest.slice(7, 19)), refused.stderr);
    assert.match(refused.stderr, /--force/);
    assert.equal(await rawDigest(`${out}:ociexp`), image.manifestDigest, 'left as it was');
    await expectExit(0, [...cache, 'export', `oci:${out}:ociexp`, `oci:${other.ref}`, '--format', 'oci', '--force']);
    assert.equal(await rawDigest(`${out}:ociexp`), other.manifestDigest);
    await expectExit(0, [...cache, 'export', `oci:${out}:second`, `oci:${image.ref}`]);
    assert.deepEqual(refNames(out), { ociexp: other.manifestDigest, second: image.manifestDigest });
  });

  it('--all copies the whole index byte for byte; umoci unpacks a platform from the copy', async () => {
    const out = join(work, 'all');
    const r = await expectExit(0, [...cache, 'export', out, `oci:${multi.ref}`, '--format', 'oci', '--all', '--json']);
    assert.equal((JSON.parse(r.stdout) as { digest: string }).digest, multi.indexDigest);
    assert.equal(await rawDigest(`${out}:${multi.tag}`), multi.indexDigest);
    const arm = await tmpDir('vmimg-oci-export-arm-');
    await runBuffer('skopeo', ['copy', '--quiet', '--override-arch', 'arm64', `oci:${out}:${multi.tag}`, `oci:${arm}/l:x`]);
    const got = describeTree(await umociRootfs({ ...multi.images.arm64, layout: `${arm}/l`, tag: 'x', ref: `${arm}/l:x` }));
    assert.deepEqual(diffTrees(got, describeTree(await umociRootfs(multi.images.arm64))), []);
    const usage = await vmimg([...cache, 'export', join(work, 'all.tar'), `oci:${multi.ref}`, '--all']);
    assert.equal(usage.code, 2, usage.stderr);
  });

  it('refuses a layout whose blobs/ is a symlink out of it, writing nothing there', async () => {
    const out = join(work, 'linked');
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(join(elsewhere, 'sha256'), { recursive: true });
    mkdirSync(out);
    writeFileSync(join(out, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(out, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    symlinkSync(elsewhere, join(out, 'blobs'));
    const r = await exportOci([out, `oci:${image.ref}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ERR_DESTINATION_EXISTS.*blobs.*symlink/);
    assert.deepEqual(readdirSync(join(elsewhere, 'sha256')), []);
  });

  it('oci:PATH:TAG splits at the last colon, preferring a directory that exists; oci: alone is a usage error', async () => {
    const parent = join(work, 'co:lon');
    mkdirSync(parent);
    const layout = join(parent, 'lay:out');
    cpSync(image.layout, layout, { recursive: true });
    for (const src of [`oci:${layout}:ociexp`, `oci:${layout}`]) {
      const out = join(parent, `out:${src.length}`);
      const r = await expectExit(0, [...cache, 'export', out, src, '--format', 'oci', '--json'], {});
      assert.equal((JSON.parse(r.stdout) as { digest: string }).digest, image.manifestDigest, src);
    }
    // DEST: a new directory with a colon in its name, and a ref name after the last colon
    const dest = join(parent, 'new:dir');
    await expectExit(0, [...cache, 'export', `oci:${dest}:v1`, `oci:${layout}:ociexp`]);
    assert.deepEqual(refNames(dest), { v1: image.manifestDigest });
    const bare = await vmimg([...cache, 'ls', 'oci:', '/']);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /ERR_INVALID_ARGUMENT.*oci:/);
  });

  it('a ref name outside the image-spec and tag grammars, or empty, is ERR_INVALID_ARGUMENT before anything is written', async () => {
    for (const bad of ['Bad Tag', '', 'a//b', '-x', 'v1:']) {
      const dest = join(work, `badname${bad.length}`);
      const r = await vmimg([...cache, 'export', `oci:${dest}:${bad}`, `oci:${image.ref}`]);
      assert.equal(r.code, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
      assert.match(r.stderr, /ERR_INVALID_ARGUMENT.*ref name/);
      assert.throws(() => readdirSync(dest), /ENOENT/, 'nothing written');
    }
    for (const good of ['v1.0_rc-1', 'a+b@c--d']) {
      const dest = join(work, `goodname${good.length}`);
      await expectExit(0, [...cache, 'export', `oci:${dest}:${good}`, `oci:${image.ref}`]);
      assert.deepEqual(refNames(dest), { [good]: image.manifestDigest });
    }
    assert.equal(await rawDigest(`${join(work, 'goodname9')}:v1.0_rc-1`), image.manifestDigest, 'skopeo addresses it');
  });

  it('a loaded image whose archive is gone: ERR_NOT_FOUND naming the archive and what to do', async () => {
    const tar = await toOciArchive(image, join(work, 'gone.tar'), 'gone');
    await expectExit(0, [...cache, 'load', tar, '-q']);
    await expectExit(0, [...cache, 'export', join(work, 'gone-ok'), `${tar}:gone`, '--format', 'oci']);
    rmSync(tar);
    const r = await exportOci([join(work, 'gone-out'), `${tar}:gone`]);
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.stderr.includes(`${tar}, which the image was loaded from`), r.stderr);
    assert.match(r.stderr, /"hint":"[^"]*load it again/);
  });

  it('the tree of an exported layout is the source tree (umoci unpack)', async () => {
    const out = join(work, 'tree');
    await expectExit(0, [...cache, 'export', `oci:${out}:t`, `oci:${image.ref}`]);
    const got = describeTree(await umociRootfs({ ...image, layout: out, tag: 't', ref: `${out}:t` }));
    assert.deepEqual(diffTrees(got, describeTree(await umociRootfs(image))), []);
  });
});
