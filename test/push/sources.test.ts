/**
 * `vmimg push` from every kind of source into a second real docker-registry on loopback: an OCI layout
 * directory (oci:DIR:TAG), an OCI archive, a classic `docker save` tar (a freshly built manifest, said
 * in the output), a Docker 25+ hybrid tar, a cached image (read from the store, not the registry), and
 * `--all` of a multi-arch index. Judged by outside tools: `skopeo inspect --raw` hashes to the source's
 * digest, and `skopeo copy` + `umoci unpack` of the pushed image gives the tree umoci unpacks from the
 * source; `vmimg pull` of a pushed image works.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildBusyboxLayout, buildDockerSaveV25, buildMultiArchLayout, pushLayout, toDockerArchive, toOciArchive, type BuiltImage, type MultiArchImage } from '../helpers/busybox.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';
import { describeTree, diffTrees, umociRootfs } from '../export/compare.js';
import { expectExit, vmimg } from '../cli/run.js';

let dest: RunningRegistry;
let image: BuiltImage;
let multi: MultiArchImage;
let wantTree: ReturnType<typeof describeTree>;
let work: string;

before(async () => {
  requireTools(['skopeo', 'umoci']);
  [dest, image, multi, work] = await Promise.all([
    startRegistry(),
    buildBusyboxLayout({ arch: 'amd64', tag: 'pushsrc', extraLayers: [{ files: { 'etc/pushed': 'yes\n' } }] }),
    buildMultiArchLayout('pushall'),
    tmpDir('vmimg-push-sources-'),
  ]);
  wantTree = describeTree(await umociRootfs(image));
});

after(async () => {
  await dest?.stop();
});

interface Pushed {
  digest: string;
  notes: string[];
  blobs: { uploaded: number; exists: number; mounted: number };
}

async function push(src: string, repo: string, ...extra: string[]): Promise<Pushed> {
  const r = await expectExit(0, ['--cache-dir', join(work, 'cache'), 'push', src, `${dest.host}/${repo}`, '--json', ...extra]);
  return JSON.parse(r.stdout) as Pushed;
}

async function rawDigest(repo: string): Promise<string> {
  const raw = await runBuffer('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${dest.host}/${repo}`]);
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

/** `skopeo copy` of the pushed image into a layout, `umoci unpack`, and the tree compared with the source's. */
async function assertSameTree(repo: string): Promise<void> {
  const layout = join(await tmpDir('vmimg-push-copy-'), 'layout');
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${dest.host}/${repo}`, `oci:${layout}:x`]);
  const got = describeTree(await umociRootfs({ ...image, layout, tag: 'x', ref: `${layout}:x` }));
  assert.deepEqual(diffTrees(got, wantTree), []);
}

describe('vmimg push from each source', () => {
  it('an OCI layout directory (oci:DIR:TAG): byte for byte, and the pushed image pulls', async () => {
    const out = await push(`oci:${image.ref}`, 'layout:1');
    assert.equal(out.digest, image.manifestDigest);
    assert.equal(await rawDigest('layout:1'), image.manifestDigest);
    await assertSameTree('layout:1');
    const cat = await expectExit(0, ['--cache-dir', join(work, 'pulled'), 'cat', `${dest.host}/layout:1`, '/etc/pushed']);
    assert.equal(cat.stdout, 'yes\n');
  });

  it('an OCI archive', async () => {
    const tar = await toOciArchive(image, join(work, 'oci.tar'), 'v1');
    const out = await push(tar, 'archive:1');
    assert.equal(out.digest, image.manifestDigest);
    assert.equal(await rawDigest('archive:1'), image.manifestDigest);
    await assertSameTree('archive:1');
  });

  it('a classic docker save tar gets a freshly built manifest, and says so', async () => {
    const tar = await toDockerArchive(image, join(work, 'classic.tar'), 'busybox:classic');
    const out = await push(tar, 'classic:1');
    assert.equal(await rawDigest('classic:1'), out.digest);
    assert.ok(out.notes.some((n) => /classic docker save/.test(n) && n.includes(out.digest)), JSON.stringify(out.notes));
    await assertSameTree('classic:1');
  });

  it('a Docker 25+ docker save tar keeps its own manifest digest', async () => {
    const saved = await buildDockerSaveV25({ source: image, file: join(work, 'v25.tar') });
    const out = await push(saved.file, 'hybrid:1');
    assert.equal(out.digest, saved.manifestDigest);
    assert.deepEqual(out.notes, []);
    assert.equal(await rawDigest('hybrid:1'), saved.manifestDigest);
    await assertSameTree('hybrid:1');
  });

  it('a cached image is pushed from the store, without reading its registry again', async () => {
    const src = await startRegistry();
    const proxy = await startFaultProxy(src.url);
    try {
      await pushLayout(image.ref, src.host, 'cached:1');
      const cache = join(await tmpDir('vmimg-push-cache-'), 'c');
      await expectExit(0, ['--cache-dir', cache, 'pull', `${proxy.host}/cached:1`, '-q']);
      proxy.clear();
      const r = await expectExit(0, ['--cache-dir', cache, 'push', `${proxy.host}/cached:1`, `${dest.host}/cached:1`, '--json']);
      assert.equal((JSON.parse(r.stdout) as Pushed).digest, image.manifestDigest);
      assert.deepEqual(proxy.requests, [], 'nothing read from the source registry');
      assert.equal(await rawDigest('cached:1'), image.manifestDigest);
    } finally {
      await proxy.stop();
      await src.stop();
    }
  });

  it('export --format oci writes an OCI layout umoci unpacks, byte for byte, from a registry or the cache', async () => {
    await push(`oci:${image.ref}`, 'forexport:7');
    const out = join(await tmpDir('vmimg-push-export-'), 'layout');
    const cache = join(work, 'export-cache');
    const r = await expectExit(0, ['--cache-dir', cache, 'export', out, `${dest.host}/forexport:7`, '--format', 'oci', '--json']);
    const res = JSON.parse(r.stdout) as { refName: string; digest: string };
    assert.deepEqual([res.refName, res.digest], ['7', image.manifestDigest]);
    const raw = await runBuffer('skopeo', ['inspect', '--raw', `oci:${out}:7`]);
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, image.manifestDigest);
    assert.deepEqual(diffTrees(describeTree(await umociRootfs({ ...image, layout: out, tag: '7', ref: `${out}:7` })), wantTree), []);
    // From the cache: the most recent image when IMAGE is left out, added to the same layout.
    await expectExit(0, ['--cache-dir', cache, 'pull', `${dest.host}/forexport:7`, '-q']);
    const again = await expectExit(0, ['--cache-dir', cache, 'export', out, '--format', 'oci', '--json']);
    assert.equal((JSON.parse(again.stdout) as { digest: string }).digest, image.manifestDigest);
    const junk = await tmpDir('vmimg-push-junk-');
    await run('touch', [join(junk, 'file')]);
    const refused = await vmimg(['--cache-dir', cache, 'export', junk, '--format', 'oci']);
    assert.match(refused.stderr, /ERR_DESTINATION_EXISTS/);
  });

  it('--all copies a multi-arch index byte for byte; each platform unpacks to its own tree', async () => {
    const out = await push(`oci:${multi.ref}`, 'multi:1', '--all');
    assert.equal(out.digest, multi.indexDigest);
    assert.equal(await rawDigest('multi:1'), multi.indexDigest);
    for (const arch of ['amd64', 'arm64'] as const) {
      const layout = join(await tmpDir('vmimg-push-all-'), 'layout');
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--override-arch', arch, `docker://${dest.host}/multi:1`, `oci:${layout}:x`]);
      const got = describeTree(await umociRootfs({ ...multi.images[arch], layout, tag: 'x', ref: `${layout}:x` }));
      assert.deepEqual(diffTrees(got, describeTree(await umociRootfs(multi.images[arch]))), []);
    }
    const again = await push(`oci:${multi.ref}`, 'multi:1', '--all');
    assert.equal(again.blobs.uploaded, 0);
  });
});
