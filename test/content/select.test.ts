/**
 * Choosing one image of a multi-image archive (issue 9 item 6; case docker-save-index-drops-image):
 * by tag, ref name, manifest digest or config digest (full, or a unique prefix of 12+ hex digits), in
 * classic and Docker 25+ `docker save` tars and OCI archives; ambiguity is ERR_AMBIGUOUS_IMAGE listing
 * what is there. Archives are written by python3's tarfile (test/helpers/mkimage.py).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ContainerFS, ErrorCode, isVmimgError, loadFromTar, parsePlatform, validateTar, type Image } from '../../src/index.js';
import { isDigestSelector, matchSelector, selectImage, type ImageCandidate } from '../../src/content/select.js';
import { py, pyBuild, type PyImage, type PyReport } from '../helpers/pyimage.js';
import { tmpDir } from '../helpers/tools.js';
import { vmimg } from '../cli/run.js';

const AMD64 = parsePlatform('linux/amd64');
const layerOf = (which: string) => [py.dir('etc/'), py.file('etc/which', `${which}\n`)];
const LAYERS = { first: layerOf('first'), second: layerOf('second'), arm: layerOf('arm') };
/** The case: two images named only by digest; Docker 25+ wrote only the first into index.json. */
const UNTAGGED: PyImage[] = [
  { layers: ['first'], repoTags: null, label: 'first' },
  { layers: ['second'], repoTags: null, label: 'second', inIndex: false },
];

let work: string;
let hybrid: PyReport;
let oci: PyReport;
let classic: PyReport;

before(async () => {
  work = await tmpDir('vmimg-select-');
  hybrid = await pyBuild({ layers: LAYERS, dockerHybrid: { file: join(work, 'hybrid.tar'), images: UNTAGGED } });
  oci = await pyBuild({
    layers: LAYERS,
    layout: { dir: join(work, 'layout'), images: [{ layers: ['first'] }, { layers: ['second'] }, { layers: ['arm'], arch: 'arm64' }], archive: join(work, 'oci.tar') },
  });
  classic = await pyBuild({
    layers: LAYERS,
    dockerClassic: { file: join(work, 'classic.tar'), images: [{ layers: ['first'], repoTags: ['app:1', 'app:latest'] }, { layers: ['second'], repoTags: ['app:2'] }, { layers: ['arm'], repoTags: ['app:2'], arch: 'arm64' }] },
  });
});

async function which(image: Image): Promise<string> {
  const fs = await ContainerFS.open(image.dir);
  try {
    return (await fs.readFile('/etc/which')).toString().trim();
  } finally {
    await fs.close();
  }
}

async function load(file: string, tag?: string, platform = AMD64): Promise<string> {
  const cacheDir = await tmpDir('vmimg-select-cache-');
  return which(await loadFromTar(join(work, file), { cacheDir, platform, ...(tag !== undefined ? { tag } : {}) }));
}

async function refused(file: string, tag: string | undefined, code: string, ...listed: string[]): Promise<void> {
  await assert.rejects(load(file, tag), (err: unknown) => {
    assert.ok(isVmimgError(err), String(err));
    assert.equal(err.code, code, err.message);
    for (const text of listed) assert.ok(err.message.includes(text), `${err.message} lists ${text}`);
    return true;
  });
}

const hex12 = (digest: string) => digest.slice('sha256:'.length, 'sha256:'.length + 12);

describe('image selection in multi-image archives', () => {
  it('docker-save-index-drops-image: both images load by config or manifest digest (full or 12+ hex)', async () => {
    const [a, b] = hybrid.dockerHybrid!;
    await refused('hybrid.tar', undefined, ErrorCode.AMBIGUOUS_IMAGE, hex12(a!.configDigest), hex12(b!.configDigest));
    assert.equal(await load('hybrid.tar', b!.configDigest), 'second');
    assert.equal(await load('hybrid.tar', hex12(b!.configDigest)), 'second');
    assert.equal(await load('hybrid.tar', `sha256:${hex12(a!.configDigest)}`), 'first');
    assert.equal(await load('hybrid.tar', b!.manifestDigest), 'second', 'a manifest missing from index.json is still found');
    assert.equal(await load('hybrid.tar', hex12(a!.manifestDigest!)), 'first');
    await refused('hybrid.tar', 'sha256:abc', ErrorCode.INVALID_ARGUMENT, '12 hex digits');
    await refused('hybrid.tar', 'f'.repeat(12), ErrorCode.NOT_FOUND, hex12(a!.configDigest));
    const report = await validateTar(join(work, 'hybrid.tar'));
    assert.deepEqual(report.images.map((i) => [i.configDigest, i.manifestDigest]), [[a!.configDigest, a!.manifestDigest], [b!.configDigest, b!.manifestDigest]]);
  });

  it('OCI archive with two untagged images of one platform: refused, not the first silently; digests select', async () => {
    const [a, b, arm] = oci.layout!;
    await refused('oci.tar', undefined, ErrorCode.AMBIGUOUS_IMAGE, hex12(a!.manifestDigest!), hex12(b!.manifestDigest!));
    assert.equal(await load('oci.tar', b!.manifestDigest), 'second');
    assert.equal(await load('oci.tar', hex12(a!.configDigest)), 'first');
    assert.equal(await load('oci.tar', undefined, parsePlatform('linux/arm64')), 'arm', 'one image for the platform: no question');
    assert.equal(await load('oci.tar', arm!.configDigest, parsePlatform('linux/arm64')), 'arm');
  });

  it('classic docker save: by any RepoTag, by config digest; one name on two platforms is chosen by platform', async () => {
    const [a, b] = classic.dockerClassic!;
    await refused('classic.tar', undefined, ErrorCode.AMBIGUOUS_IMAGE, 'app:1, app:latest', 'app:2');
    assert.equal(await load('classic.tar', 'app:latest'), 'first');
    assert.equal(await load('classic.tar', 'docker.io/library/app:1'), 'first');
    assert.equal(await load('classic.tar', 'app:2'), 'second');
    assert.equal(await load('classic.tar', 'app:2', parsePlatform('linux/arm64')), 'arm');
    assert.equal(await load('classic.tar', b!.configDigest.slice('sha256:'.length)), 'second');
    assert.equal(await load('classic.tar', hex12(a!.configDigest)), 'first');
    await refused('classic.tar', 'app:3', ErrorCode.NOT_FOUND, 'app:1', 'app:2');
  });

  it('the CLI: exit 2 with the list on ambiguity; --tag takes a digest', async () => {
    const env = { VMIMG_CACHE_DIR: await tmpDir('vmimg-select-cli-') };
    const [, b] = hybrid.dockerHybrid!;
    const ambiguous = await vmimg(['load', join(work, 'hybrid.tar'), '--platform', 'linux/amd64'], { env });
    assert.equal(ambiguous.code, 2, ambiguous.stderr);
    assert.match(ambiguous.stderr, /ERR_AMBIGUOUS_IMAGE|several images/);
    assert.ok(ambiguous.stderr.includes(hex12(b!.configDigest)), ambiguous.stderr);
    const ok = await vmimg(['load', join(work, 'hybrid.tar'), '--platform', 'linux/amd64', '--tag', hex12(b!.manifestDigest!)], { env });
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe('selectImage (any source can call it)', () => {
  const c = (names: string[], digest: string, config: string, entry: number, architecture = 'amd64'): ImageCandidate => ({
    names, digests: [`sha256:${digest.padEnd(64, '0')}`], configDigest: `sha256:${config.padEnd(64, '0')}`, platform: { os: 'linux', architecture }, entry,
  });
  const all = [c(['a:1'], 'aaaaaaaaaaaa11', 'cccccccccccc11', 0), c([], 'aaaaaaaaaaaa22', 'dddddddddddd22', 1), c([], 'eeee', 'ffff', 2, 'arm64')];

  it('matches names, digests and prefixes; a prefix shared by two is ambiguous', () => {
    assert.deepEqual(matchSelector(all, 'a:1'), [all[0]]);
    assert.deepEqual(matchSelector(all, 'aaaaaaaaaaaa2'), [all[1]]);
    assert.deepEqual(matchSelector(all, 'sha256:dddddddddddd'), [all[1]]);
    assert.equal(matchSelector(all, 'aaaaaaaaaaaa').length, 2);
    assert.throws(() => selectImage(all, 'aaaaaaaaaaaa', AMD64, 'x.tar'), { code: ErrorCode.AMBIGUOUS_IMAGE, message: /a:1 manifest sha256:aaaaaaaaaaaa.*\(untagged\) manifest sha256:aaaaaaaaaaaa/ });
    assert.equal(selectImage(all, 'eeee'.padEnd(12, '0'), AMD64, 'x.tar'), all[2], 'a named single image is returned whatever its platform');
    assert.equal(isDigestSelector('abcdef'), false, 'short hex is a name');
    assert.equal(isDigestSelector('sha256:ab'), true);
  });
});
