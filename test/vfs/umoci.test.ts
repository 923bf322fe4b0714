// ContainerFS over layers flattened by src/layer, compared path by path with `umoci unpack`
// of the same umoci-built image (the reference for OCI layer semantics).
import assert from 'node:assert/strict';
import { createReadStream, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { flattenLayer, layerPaths } from '../../src/layer/flatten.js';
import { ContainerFS, makedev } from '../../src/vfs/index.js';
import { buildBusyboxLayout, type BuiltImage } from '../helpers/busybox.js';
import { buildRichImage, layoutLayers, walkReference, xattrsOf, type RefEntry } from '../helpers/layers.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { treeCases } from '../helpers/tree-cases.js';

/** Flattens every layer of a layout image into an image directory (config.json + pairs). */
async function flattenImage(image: BuiltImage): Promise<string> {
  const dir = await tmpDir('vmimg-vfs-image-');
  const layers = layoutLayers(image.layout, image.manifestDigest);
  for (const l of layers) {
    await flattenLayer(createReadStream(l.path), { dir, expectedDiffId: l.diffId, expectedDigest: l.digest });
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ layers: layers.map((l) => l.diffId) }));
  return dir;
}

async function umociUnpack(image: BuiltImage): Promise<string> {
  requireTools(['umoci']);
  const bundle = join(await tmpDir('vmimg-vfs-unpack-'), 'bundle');
  await run('umoci', ['unpack', '--image', image.ref, bundle]);
  return join(bundle, 'rootfs');
}

const KIND_BITS: Record<RefEntry['kind'], number> = {
  file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000,
};

async function sha256Of(fs: ContainerFS, ino: number, size: number): Promise<string> {
  const h = createHash('sha256');
  for (let pos = 0; pos < size; pos += 1 << 20) h.update(await fs.read(ino, pos, 1 << 20));
  return h.digest('hex');
}

/** Every path of the merged tree, through the inode API. */
function walkOurs(fs: ContainerFS): Map<string, number> {
  const out = new Map<string, number>();
  const visit = (dir: number, rel: string): void => {
    for (const e of fs.readdir(dir)) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      out.set(path, e.ino);
      if ((fs.getattr(e.ino).mode & 0o170000) === 0o040000) visit(e.ino, path);
    }
  };
  visit(fs.root(), '');
  return out;
}

/** Compares type, mode, owner, size, content, link target, rdev, xattrs and hardlink identity. */
async function compareWithUmoci(fs: ContainerFS, rootfs: string, skip: readonly string[] = []): Promise<number> {
  const kept = (path: string): boolean => !skip.some((s) => path === s || path.startsWith(`${s}/`));
  const ref = new Map([...walkReference(rootfs)].map(([k, v]) => [Buffer.from(k, 'latin1').toString('utf8'), v] as const).filter(([k]) => kept(k)));
  const ours = new Map([...walkOurs(fs)].filter(([k]) => kept(k)));
  assert.deepEqual([...ours.keys()].sort(), [...ref.keys()].sort(), 'the same set of paths');
  const diffs: string[] = [];
  const inoMap = new Map<number, number>();
  for (const [path, r] of ref) {
    const ino = ours.get(path)!;
    const a = fs.getattr(ino);
    const got: Record<string, unknown> = { mode: a.mode.toString(8), uid: a.uid, gid: a.gid };
    const want: Record<string, unknown> = { mode: (r.mode | KIND_BITS[r.kind]).toString(8), uid: r.uid, gid: r.gid };
    if (r.kind === 'file') {
      Object.assign(got, { size: a.size, sha256: await sha256Of(fs, ino, a.size), nlink: a.nlink });
      Object.assign(want, { size: r.size, sha256: r.sha256 });
      want.nlink = [...ref.values()].filter((x) => x.ino === r.ino).length;
      if (inoMap.has(r.ino) && inoMap.get(r.ino) !== ino) diffs.push(`${path}: hardlink split`);
      inoMap.set(r.ino, ino);
    }
    if (r.kind === 'symlink') {
      got.link = fs.readlink(ino);
      want.link = r.link!.toString('utf8');
    }
    if (r.kind === 'char' || r.kind === 'block') {
      got.rdev = a.rdev;
      want.rdev = makedev(r.rdevMajor, r.rdevMinor);
    }
    if (r.kind !== 'symlink' && (fs.listxattr(ino).length > 0 || path === 'usr/bin/ping')) {
      got.xattrs = Object.fromEntries(fs.listxattr(ino).sort().map((n) => [n, fs.getxattr(ino, n).toString('hex')]));
      want.xattrs = Object.fromEntries(Object.entries(await xattrsOf(join(rootfs, path))).sort());
    }
    if (JSON.stringify(got) !== JSON.stringify(want)) diffs.push(`${path}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
  }
  assert.deepEqual(diffs, []);
  return ref.size;
}

test('merged tree of a multi-layer image with every layer hazard equals umoci unpack', async () => {
  const image = await buildBusyboxLayout({
    arch: 'amd64',
    tag: 'vfs-hazards',
    extraLayers: [
      {
        files: {
          'a/b/c/x': 'x\n', 'a/b/c/y': 'y\n', 'd/sub/deep': 'deep\n', 'd/top': 'top\n',
          p: { dir: true, mode: 0o750 }, 'p/old': 'old\n',
          'h/one': 'shared\n', 'h/two': { hardlink: 'h/one' },
          'srv/conf': { content: 'secret\n', mode: 0o600, uid: 1000, gid: 1000 },
          'lib64': { symlink: '/usr/lib' }, 'usr/lib/libc.so': 'libc\n', 'up': { symlink: '../../../../etc/passwd' },
        },
      },
      { whiteout: '/a/b/c/x' },
      { files: { new: 'new\n' }, at: '/d', opaque: true },
      { files: { p: 'p is a file now\n' } },
      { files: { p: { dir: true, mode: 0o711 }, 'p/fresh': 'fresh\n' } },
      { whiteout: '/h/one' },
      { files: { 'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n', 'srv/conf': 'replaced\n' } },
    ],
  });
  const [dir, rootfs] = await Promise.all([flattenImage(image), umociUnpack(image)]);
  const fs = await ContainerFS.open(dir);
  try {
    const count = await compareWithUmoci(fs, rootfs);
    assert.ok(count > 20, `compared ${count} paths`);
    // the hazards really were exercised
    assert.deepEqual(fs.readdir('/a/b/c'), ['y']);
    assert.deepEqual(fs.readdir('/d'), ['new']);
    assert.deepEqual(fs.readdir('/p'), ['fresh']);
    assert.equal(fs.lstat('/h/two').nlink, 1);
    assert.equal((await fs.readFile('/up')).toString(), 'root:x:0:0:root:/root:/bin/sh\n');
    assert.equal(fs.realpath('/lib64/libc.so'), '/usr/lib/libc.so');
    // the same layers given as .idx/.contents pairs give the same tree
    const pairs = layoutLayers(image.layout, image.manifestDigest).map((l) => layerPaths(dir, l.diffId));
    const viaPairs = await ContainerFS.open(pairs);
    const attrs = (f: ContainerFS) => [...walkOurs(f)].map(([p, ino]) => [p, f.getattr(ino)]);
    assert.deepEqual(attrs(viaPairs), attrs(fs));
    await viaPairs.close();
  } finally {
    await fs.close();
  }
});

test('merged tree of the rich fixture (devices, xattrs, hardlinks, odd names) equals umoci unpack', async () => {
  const { image } = await buildRichImage();
  const [dir, rootfs] = await Promise.all([flattenImage(image), umociUnpack(image)]);
  const fs = await ContainerFS.open(dir);
  try {
    const count = await compareWithUmoci(fs, rootfs);
    assert.ok(count > 40, `compared ${count} paths`);
    assert.ok(fs.lstat('/dev/null').isCharacterDevice());
  } finally {
    await fs.close();
  }
});

test('merged trees of the issue-9 cases (repeated layers, symlinked parents, hardlinks) equal umoci unpack', async () => {
  for (const c of await treeCases()) {
    const [dir, rootfs] = await Promise.all([flattenImage(c.image), umociUnpack(c.image)]);
    const fs = await ContainerFS.open(dir);
    try {
      const count = await compareWithUmoci(fs, rootfs, Object.keys(c.differs ?? {}));
      assert.ok(count > 2, `${c.name}: compared ${count} paths`);
    } finally {
      await fs.close();
    }
  }
});
