/**
 * pull() through a nested image index on the real CNCF registry: an outer OCI index whose only entry is
 * (unlabelled) the multi-arch index of umoci-built busybox images. skopeo pushes the inner index with
 * --all (it refuses nested lists), then the outer index is PUT as a plain manifest through the registry API.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pull, ContainerFS, parsePlatform } from '../../src/index.js';
import { buildMultiArchLayout, pushLayout, type MultiArchImage } from '../helpers/busybox.js';
import { OCI_INDEX } from '../helpers/oci-index.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let multi: MultiArchImage;
let outerDigest: string;

/** PUT an OCI index as a manifest; returns its digest. */
async function putIndex(host: string, repoTag: string, index: unknown): Promise<string> {
  const [repo, tag] = repoTag.split(':') as [string, string];
  const body = Buffer.from(JSON.stringify(index));
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': OCI_INDEX }, body });
  assert.equal(res.status, 201, `registry refused the outer index: ${res.status} ${await res.text()}`);
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

before(async () => {
  registry = await startRegistry();
  multi = await buildMultiArchLayout('nestedpull');
  const inner = await pushLayout(multi.ref, registry.host, 'nested/busybox:inner', { all: true });
  assert.equal(inner, multi.indexDigest);
  const innerSize = readFileSync(join(multi.layout, 'blobs', 'sha256', inner.slice('sha256:'.length))).length;
  outerDigest = await putIndex(registry.host, 'nested/busybox:outer', {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ mediaType: OCI_INDEX, digest: inner, size: innerSize }],
  });
});

after(async () => {
  await registry?.stop();
});

describe('pull through a nested index', () => {
  it('picks each architecture from the index inside the index', async () => {
    const cacheDir = await tmpDir('vmimg-pull-nested-');
    for (const arch of ['amd64', 'arm64'] as const) {
      const image = await pull(`${registry.host}/nested/busybox:outer`, { platform: parsePlatform(arch), cacheDir, env: {} });
      assert.equal(image.config.architecture, arch);
      assert.equal(image.config.source.indexDigest, outerDigest, 'the index named by the tag is recorded');
      assert.equal(image.config.source.manifestDigest, multi.images[arch].manifestDigest);
      const fs = await ContainerFS.open(image.dir);
      try {
        assert.equal((await fs.readFile('/etc/arch')).toString('utf8').trim(), arch);
      } finally {
        await fs.close();
      }
    }
  });
});
