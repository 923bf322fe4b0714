/**
 * OCI image layout directories as a source (issue 12): layouts written by `skopeo copy … oci:DIR:TAG`
 * and by `umoci` (several images in one index.json, an image index, an index nested in an index, with
 * attestations) load to the tree `umoci unpack` makes of the same image; `--tag` picks a ref name,
 * otherwise the only image, or ERR_AMBIGUOUS_IMAGE listing the names. The CLI takes `oci:DIR[:TAG]` and
 * bare layout directories wherever it takes IMAGE.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainerFS, ErrorCode, isVmimgError, loadFromLayout, parsePlatform, validateLayout } from '../../src/index.js';
import { buildBusyboxLayout, buildMultiArchLayout, type BuiltImage, type MultiArchImage } from '../helpers/busybox.js';
import { walkReference } from '../helpers/layers.js';
import { OCI_INDEX, writeIndexIntoLayout } from '../helpers/oci-index.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';

const KIND_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 } as const;

/** Path → "mode uid:gid sha256-or-link" of the merged tree, through the inode API. */
async function ourTree(dir: string): Promise<Map<string, string>> {
  const fs = await ContainerFS.open(dir);
  const out = new Map<string, string>();
  try {
    const visit = async (ino: number, rel: string): Promise<void> => {
      for (const e of fs.readdir(ino)) {
        const path = rel === '' ? e.name : `${rel}/${e.name}`;
        const a = fs.getattr(e.ino);
        const kind = a.mode & 0o170000;
        const what = kind === 0o100000 ? createHash('sha256').update(await fs.read(e.ino, 0, a.size)).digest('hex') : kind === 0o120000 ? fs.readlink(e.ino) : '';
        out.set(path, `${a.mode.toString(8)} ${a.uid}:${a.gid} ${what}`);
        if (kind === 0o040000) await visit(e.ino, path);
      }
    };
    await visit(fs.root(), '');
  } finally {
    await fs.close();
  }
  return out;
}

/** The same description of `umoci unpack`'s rootfs of `ref` (LAYOUT:TAG). */
async function umociTree(ref: string): Promise<Map<string, string>> {
  requireTools(['umoci']);
  const bundle = join(await tmpDir('vmimg-layout-unpack-'), 'bundle');
  await run('umoci', ['unpack', '--image', ref, bundle]);
  const out = new Map<string, string>();
  for (const [path, r] of walkReference(join(bundle, 'rootfs'))) {
    const what = r.kind === 'file' ? r.sha256 : r.kind === 'symlink' ? r.link!.toString('utf8') : '';
    out.set(Buffer.from(path, 'latin1').toString('utf8'), `${(r.mode | KIND_BITS[r.kind]).toString(8)} ${r.uid}:${r.gid} ${what}`);
  }
  return out;
}

function assertSameTree(got: Map<string, string>, want: Map<string, string>): void {
  const diffs = [...want].filter(([p, w]) => got.get(p) !== w).map(([p, w]) => `${p}: got ${got.get(p)} want ${w}`);
  diffs.push(...[...got.keys()].filter((p) => !want.has(p)).map((p) => `${p}: unexpected`));
  assert.deepEqual(diffs, []);
}

let multi: MultiArchImage;
let copied: string;
let extra: BuiltImage;

before(async () => {
  requireTools(['skopeo', 'umoci']);
  multi = await buildMultiArchLayout('lay', { attestations: true });
  // A third, single-platform image in the same layout, and an index nested in an index.
  extra = await buildBusyboxLayout({ arch: 'amd64', dir: multi.layout, tag: 'extra', extraLayers: [{ files: { 'etc/which': 'extra\n' } }] });
  const size = statSync(join(multi.layout, 'blobs', 'sha256', multi.indexDigest.slice(7))).size;
  writeIndexIntoLayout(multi.layout, 'nested', [{ mediaType: OCI_INDEX, digest: multi.indexDigest, size }]);
  copied = join(await tmpDir('vmimg-layout-skopeo-'), 'layout');
  await run('skopeo', ['copy', '--all', `oci:${multi.ref}`, `oci:${copied}:v1`]);
});

describe('OCI image layout directories', () => {
  it('a layout skopeo copy wrote (one tag, an image index) loads to the umoci tree', async () => {
    const cacheDir = await tmpDir('vmimg-layout-cache-');
    const image = await loadFromLayout(copied, { cacheDir, platform: parsePlatform('arm64') });
    assert.equal(image.config.source.kind, 'oci-layout');
    assert.equal(image.config.source.indexDigest, multi.indexDigest, 'skopeo --all copies the index byte for byte');
    assert.equal(image.config.source.manifestDigest, multi.images.arm64.manifestDigest);
    assert.equal(image.name, `${copied}:v1`, 'a bare ref name is recorded after the path');
    assertSameTree(await ourTree(image.dir), await umociTree(multi.images.arm64.ref));
    // The store keeps the index, the manifest and the config it resolved, verified.
    const blobs = await readdir(join(cacheDir, 'blobs', 'sha256'));
    for (const d of [multi.indexDigest, multi.images.arm64.manifestDigest, image.config.source.configDigest]) assert.ok(blobs.includes(d.slice(7)), d);
  });

  it("umoci's multi-image index.json: --tag picks a ref name; without it the choice is refused, listing the names", async () => {
    const cacheDir = await tmpDir('vmimg-layout-cache-');
    const image = await loadFromLayout(multi.layout, { cacheDir, tag: 'extra' });
    assertSameTree(await ourTree(image.dir), await umociTree(extra.ref));
    await assert.rejects(loadFromLayout(multi.layout, { cacheDir }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.AMBIGUOUS_IMAGE), String(err));
      for (const name of ['lay-amd64', 'lay-arm64', 'lay', 'extra', 'nested']) assert.ok(err.message.includes(name), `${err.message} names ${name}`);
      return true;
    });
    await assert.rejects(loadFromLayout(multi.layout, { cacheDir, tag: 'nope' }), { code: ErrorCode.NOT_FOUND });
  });

  it('an index nested in an index, with attestations beside the images, resolves to the platform asked', async () => {
    const cacheDir = await tmpDir('vmimg-layout-cache-');
    const image = await loadFromLayout(multi.layout, { cacheDir, tag: 'nested', platform: parsePlatform('linux/arm64/v8') });
    assert.equal(image.config.source.manifestDigest, multi.images.arm64.manifestDigest);
    assert.deepEqual(image.config.source.indexDigests?.[1], multi.indexDigest, 'both indexes are recorded');
    await assert.rejects(loadFromLayout(multi.layout, { cacheDir, tag: 'nested', platform: parsePlatform('s390x') }), { code: ErrorCode.PLATFORM_MISMATCH });
    const report = await validateLayout(multi.layout);
    assert.equal(report.format, 'oci-layout');
    assert.ok(report.images.every((i) => !i.platform.startsWith('unknown')), 'attestations are not images');
  });

  it('the CLI reads oci:DIR[:TAG] and bare layout directories wherever it takes IMAGE', async () => {
    const cache = await tmpDir('vmimg-layout-cli-');
    const c = (...args: string[]) => ['--cache-dir', cache, ...args];
    assert.equal((await expectExit(0, c('cat', `oci:${multi.layout}:extra`, '/etc/which'))).stdout, 'extra\n');
    assert.equal((await expectExit(0, c('cat', copied, '/etc/arch', '--arch', 'arm64'))).stdout, 'arm64\n');
    await expectExit(0, c('load', `oci:${multi.layout}`, '--tag', 'lay', '--arch', 'amd64', '-q'));
    const platforms = JSON.parse((await expectExit(0, c('inspect', `oci:${copied}`, '--platforms', '--json'))).stdout) as { platforms: { platform: string }[] };
    assert.deepEqual(platforms.platforms.map((p) => p.platform).sort(), ['linux/amd64', 'linux/arm64']);
    const ambiguous = await expectExit(2, c('ls', multi.layout, '/'));
    assert.match(ambiguous.stderr, /ERR_AMBIGUOUS_IMAGE.*extra/);
    assert.match((await expectExit(2, c('pull', `oci:${multi.layout}:extra`))).stderr, /hint: vmimg load oci:.* reads an OCI image layout directory/);
    const notLayout = await tmpDir('vmimg-layout-none-');
    assert.match((await expectExit(2, c('ls', `oci:${notLayout}`, '/'))).stderr, /ERR_INVALID_ARGUMENT: .*not an OCI image layout/);
    assert.match((await expectExit(3, c('ls', `oci:${notLayout}/missing:tag`, '/'))).stderr, /ERR_NOT_FOUND/);
  });

  it("a layer descriptor whose size is not the blob's is refused before the layer is read (ERR_DIGEST_MISMATCH), nothing flattened", async () => {
    // python rewrites the manifest (and index.json's entry for it): the layer's digest stays right
    const REWRITE = `
import hashlib, json, os, sys
d, delta, digest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
blob = lambda h: os.path.join(d, 'blobs', 'sha256', h)
index = json.load(open(os.path.join(d, 'index.json')))
entry = next(e for e in index['manifests'] if e['digest'] == digest)
m = json.load(open(blob(entry['digest'][7:])))
big = max(m['layers'], key=lambda l: l['size'])
big['size'] = big['size'] + delta if delta else 2**53 - 1
raw = json.dumps(m).encode()
h = hashlib.sha256(raw).hexdigest()
open(blob(h), 'wb').write(raw)
entry['digest'], entry['size'] = 'sha256:' + h, len(raw)
json.dump(index, open(os.path.join(d, 'index.json'), 'w'))
`;
    for (const delta of ['512', '-512', '0']) {
      const dir = await tmpDir('vmimg-layout-size-');
      await run('cp', ['-r', `${extra.layout}/.`, dir]);
      await run('python3', ['-c', REWRITE, dir, delta, extra.manifestDigest]);
      const cacheDir = await tmpDir('vmimg-layout-size-cache-');
      await assert.rejects(loadFromLayout(dir, { cacheDir, tag: extra.tag }), (err: unknown) => {
        assert.ok(isVmimgError(err, ErrorCode.DIGEST_MISMATCH), String(err));
        assert.match(err.message, /is \d+ bytes, its descriptor says \d+/);
        return true;
      });
      const layers = await readdir(join(cacheDir, 'layers', 'sha256')).catch(() => [] as string[]);
      assert.deepEqual(layers.filter((n) => !n.startsWith('.')), [], `delta ${delta}: nothing flattened`);
    }
  });
});
