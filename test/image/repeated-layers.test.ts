/**
 * The same layer (same diff_id) listed more than once in one image, from every source: classic
 * `docker save` (the repeat's layer.tar is a symlink to the first), Docker 25+ `docker save`, OCI
 * archive, and a registry pull. Inputs are written by python3's tarfile (test/helpers/mkimage.py).
 * Every position applies the layer (a whiteout between the repeats matters); the image directory
 * stores each distinct layer once; config.json keeps the full ordered list.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerFS, loadFromTar, parsePlatform, pull, type Image } from '../../src/index.js';
import { py, pyBuild, type PyImage, type PyReport } from '../helpers/pyimage.js';
import { pushLayout } from '../helpers/skopeo.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';

const LAYERS = {
  app: [py.dir('bin/'), py.file('bin/app', 'app v1\n', { mode: 0o755 }), py.hard('bin/app-link', 'bin/app'), py.dir('etc/'), py.file('etc/app.conf', 'conf\n')],
  empty: [],
  gone: [py.file('etc/.wh.app.conf'), py.file('etc/after-whiteout', 'w\n')],
};
/** app, empty, a whiteout of /etc/app.conf, app again, empty again. */
const IMAGE: PyImage = { layers: ['app', 'empty', 'gone', 'app', 'empty'], tag: 'twice', repoTags: ['hunt/dup:twice'] };
const AMD64 = parsePlatform('linux/amd64');

let work: string;
let report: PyReport;
let registry: RunningRegistry | undefined;

before(async () => {
  work = await tmpDir('vmimg-repeat-');
  report = await pyBuild({
    layers: LAYERS,
    layout: { dir: join(work, 'layout'), images: [IMAGE], archive: join(work, 'oci.tar') },
    dockerClassic: { file: join(work, 'classic.tar'), images: [IMAGE] },
    dockerHybrid: { file: join(work, 'hybrid.tar'), images: [IMAGE] },
  });
});

after(async () => {
  await registry?.stop();
});

async function checkImage(image: Image): Promise<void> {
  const diffIds = IMAGE.layers.map((l) => report.layers[l]!.diffId);
  assert.deepEqual(image.config.layers, diffIds, 'config.json keeps every position, in order');
  const stored = readdirSync(image.dir).filter((f) => f.endsWith('.idx'));
  assert.equal(stored.length, 3, 'each distinct layer is stored once');
  const fs = await ContainerFS.open(image.dir);
  try {
    assert.equal((await fs.readFile('/etc/app.conf')).toString(), 'conf\n', 'the repeat re-applies what the whiteout removed');
    assert.equal((await fs.readFile('/etc/after-whiteout')).toString(), 'w\n');
    assert.equal(fs.lstat('/bin/app').nlink, 2, 'the repeat has its own hardlinked pair');
    assert.equal(fs.lstat('/bin/app').ino, fs.lstat('/bin/app-link').ino);
  } finally {
    await fs.close();
  }
}

describe('the same layer twice in one image', () => {
  for (const [name, file] of [['classic docker save (symlinked layer.tar)', 'classic.tar'], ['Docker 25+ docker save', 'hybrid.tar'], ['OCI archive', 'oci.tar']] as const) {
    it(`loads from a ${name}`, async () => {
      const cacheDir = await tmpDir('vmimg-repeat-cache-');
      await checkImage(await loadFromTar(join(work, file), { cacheDir, platform: AMD64 }));
    });
  }

  it('pulls from a registry', async () => {
    registry = await startRegistry();
    await pushLayout({ layout: join(work, 'layout'), tag: 'twice' }, registry.host, 'hunt/dup:twice');
    const cacheDir = await tmpDir('vmimg-repeat-cache-');
    const events: string[] = [];
    const image = await pull(`${registry.host}/hunt/dup:twice`, {
      cacheDir, platform: AMD64, env: {},
      onProgress: (e) => e.type === 'layer' && (e.state === 'done' || e.state === 'cached') && events.push(`${e.index}:${e.state}`),
    });
    await checkImage(image);
    assert.deepEqual(events.map((e) => e.split(':')[0]).sort(), ['0', '1', '2', '3', '4'], 'every position reports an end state');
    // a second pull of the same image is all cached and still right
    await checkImage(await pull(`${registry.host}/hunt/dup:twice`, { cacheDir, platform: AMD64, env: {} }));
  });
});
