// `vmimg index build` on an image pulled from the real registry (docker-registry on loopback; the
// Debian test image made by umoci and pushed by skopeo): one .zran for its 10+ MiB gzip layer, whose
// spans re-inflate to what `gzip -dc` makes of the cached blob.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inflateSpan } from '../../src/lazy/span-inflate.js';
import { decodeZran, spanRange } from '../../src/lazy/zran-format.js';
import { debianArchive } from '../boot/debian-fixture.js';
import { expectExit } from '../cli/run.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let ref: string;

before(async () => {
  requireTools(['skopeo', 'gzip']);
  const [archive, reg] = await Promise.all([debianArchive('amd64'), startRegistry()]);
  registry = reg;
  ref = `${registry.host}/lazy/debian:1`;
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}:latest`, `docker://${ref}`]);
});

after(async () => {
  await registry?.stop();
});

interface Result {
  layers: { digest: string; status: string; checkpoints?: number; indexSize?: number; path?: string; compressedSize: number }[];
}

describe('vmimg index build', () => {
  test('builds the .zran of the pulled gzip layer once; its spans inflate to gzip -dc of the blob', async () => {
    const cache = await tmpDir('vmimg-lazy-cli-');
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', ref]);
    const first = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'index', 'build', ref, '--span-size', '1', '--json'])).stdout) as Result;
    const built = first.layers.filter((l) => l.status === 'built');
    assert.equal(built.length, 1, JSON.stringify(first));
    const layer = built[0]!;
    const index = decodeZran(readFileSync(layer.path!));
    assert.equal(index.digest, layer.digest);
    assert.equal(index.checkpoints.length, layer.checkpoints);
    assert.ok(layer.indexSize! < layer.compressedSize * 0.05, `index ${layer.indexSize} of ${layer.compressedSize}`);
    const blobFile = join(cache, 'blobs', 'sha256', layer.digest.slice(7));
    const blob = readFileSync(blobFile);
    const tar = await runBuffer('gzip', ['-dc', blobFile]);
    for (let i = 0; i < index.checkpoints.length; i++) {
      const r = spanRange(index, i);
      assert.ok(inflateSpan(index, i, blob.subarray(r.cStart, r.cEnd)).equals(tar.subarray(r.uStart, r.uEnd)), `span ${i}`);
    }
    const again = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'index', 'build', ref, '--json'])).stdout) as Result;
    assert.equal(again.layers.find((l) => l.digest === layer.digest)!.status, 'present');
    const human = await expectExit(0, ['--cache-dir', cache, 'index', 'build', ref, '--force']);
    assert.match(human.stdout, /built, \d+ checkpoints/);
    // prune keeps the .zran while an image uses its blob, and deletes it with the blob.
    await expectExit(0, ['--cache-dir', cache, 'prune']);
    assert.ok(existsSync(layer.path!), 'kept while the image is cached');
    await expectExit(0, ['--cache-dir', cache, 'rm', ref]);
    await expectExit(0, ['--cache-dir', cache, 'prune']);
    assert.ok(!existsSync(layer.path!), 'deleted with its blob');
  });

  test('pull --index-build writes the same .zran in a worker while flattening', async () => {
    const cache = await tmpDir('vmimg-lazy-pull-');
    await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--index-build', ref]);
    const zrans = readdirSync(join(cache, 'checkpoints', 'sha256')).filter((n) => n.endsWith('.zran'));
    assert.equal(zrans.length, 1, zrans.join(' '));
    const during = readFileSync(join(cache, 'checkpoints', 'sha256', zrans[0]!));
    const r = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'index', 'build', ref, '--force', '--json'])).stdout) as Result;
    assert.equal(r.layers.filter((l) => l.status === 'built').length, 1);
    assert.ok(readFileSync(join(cache, 'checkpoints', 'sha256', zrans[0]!)).equals(during), 'built from the file = built during the pull');
  });

  test('index push: an OCI artifact with subject = the image manifest, listed by the sha256-<hex> fallback tag (skopeo reads both)', async () => {
    const cache = await tmpDir('vmimg-lazy-push-');
    const pulled = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'pull', '--index-build', '--json', ref])).stdout) as { manifestDigest: string };
    const subject = pulled.manifestDigest;
    const r = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'index', 'push', ref, '--json'])).stdout) as { artifact: { digest: string }; discovery: string; blobs: number };
    assert.equal(r.discovery, 'tag-fallback', 'distribution 2.8.2 has no referrers API');
    assert.equal(r.blobs, 2, 'the .idx and the .zran of the one layer');
    const repo = `docker://${registry.host}/lazy/debian`;
    const raw = async (target: string): Promise<Record<string, unknown>> => JSON.parse(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `${repo}${target}`])) as Record<string, unknown>;
    const fallback = (await raw(`:${subject.replace(':', '-')}`)) as { manifests: { digest: string; artifactType?: string }[] };
    assert.deepEqual(fallback.manifests.map((m) => [m.digest, m.artifactType]), [[r.artifact.digest, 'application/vnd.vmimg.lazy-index.v1']]);
    const artifact = (await raw(`@${r.artifact.digest}`)) as { subject: { digest: string }; layers: { mediaType: string; annotations: Record<string, string> }[] };
    assert.equal(artifact.subject.digest, subject);
    assert.deepEqual(artifact.layers.map((l) => l.mediaType).sort(), ['application/vnd.vmimg.layer.idx.v2', 'application/vnd.vmimg.layer.zran.v1']);
    assert.ok(artifact.layers.every((l) => l.annotations['dev.vmimg.layer.digest']?.startsWith('sha256:')));
    // A second push (a new artifact: another creation time) is appended, never duplicated or lost.
    const again = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'index', 'push', ref, '--json'])).stdout) as { artifact: { digest: string } };
    const after2 = (await raw(`:${subject.replace(':', '-')}`)) as { manifests: { digest: string }[] };
    assert.deepEqual(after2.manifests.map((m) => m.digest).sort(), [r.artifact.digest, again.artifact.digest].sort());
    const human = await expectExit(0, ['--cache-dir', cache, 'index', 'push', ref]);
    assert.match(human.stdout, /^pushed sha256:[0-9a-f]{64} \(2 blobs\) .* sha256-[0-9a-f]{64} tag/);
  });

  test('--span-size outside 1..64 is ERR_INVALID_ARGUMENT', async () => {
    const r = await expectExit(2, ['index', 'build', ref, '--span-size', '0']);
    assert.match(r.stderr, /ERR_INVALID_ARGUMENT.*--span-size/);
  });
});
