/**
 * pushImage from a real registry into a second real docker-registry (anonymous, htpasswd, token auth):
 * skopeo inspect --raw of the pushed image hashes to the source's digest, blobs the destination has
 * are skipped, same-registry blobs are mounted, chunked uploads, --all round-trips a multi-arch index,
 * and into an OCI layout directory that umoci unpacks.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildMultiArchLayout, pushLayout, type MultiArchImage } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/reference/index.js';
import { pushImage } from '../../src/push/push.js';
import { pushSourceFromReader } from '../../src/push/open-source.js';
import { RegistryBlobReader } from '../../src/content/index.js';
import { OciLayoutSink, RegistrySink, type RegistrySinkOptions } from '../../src/push/sinks.js';
import type { PushEvent } from '../../src/push/types.js';

let src: RunningRegistry;
let multi: MultiArchImage;
const client = new RegistryClient();

before(async () => {
  requireTools(['skopeo', 'umoci']);
  [src, multi] = await Promise.all([startRegistry(), buildMultiArchLayout('pushsrc')]);
  await pushLayout(multi.ref, src.host, 'busybox:multi', { all: true });
});

after(async () => {
  await client.close();
  await src?.stop();
});

/** sha256 of what skopeo reads back as the raw manifest (or index) of `ref`. */
async function rawDigest(ref: string, creds?: string): Promise<string> {
  const args = ['inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${ref}`];
  return `sha256:${createHash('sha256').update(await runBuffer('skopeo', args)).digest('hex')}`;
}

async function push(from: string, to: string, options: RegistrySinkOptions & { all?: boolean; arch?: string } = {}) {
  const fromRef = parseReference(from);
  const toRef = parseReference(to);
  const sink = new RegistrySink(toRef, options);
  const events: PushEvent[] = [];
  try {
    const source = await pushSourceFromReader(new RegistryBlobReader(client, fromRef), {
      all: options.all === true,
      platform: { os: 'linux', architecture: options.arch ?? 'amd64' },
      origin: { registry: fromRef.registry, repository: fromRef.repository },
    });
    const result = await pushImage(source, sink, { tag: toRef.tag, onEvent: (e) => events.push(e) });
    return { result, events };
  } finally {
    await sink.close();
  }
}

describe('push to a registry', () => {
  for (const auth of ['none', 'htpasswd', 'token'] as const) {
    it(`copies one platform byte for byte (${auth} auth), then skips every blob on a re-push`, async () => {
      const dest = await startRegistry({ auth });
      try {
        const creds = dest.creds;
        const options: RegistrySinkOptions = creds ? { credentials: { [dest.host]: { username: 'tester', password: 'secret' } } } : {};
        const { result } = await push(`${src.host}/busybox:multi`, `${dest.host}/copy/busybox:arm`, { ...options, arch: 'arm64' });
        assert.equal(result.descriptor.digest, multi.images.arm64.manifestDigest);
        assert.equal(await rawDigest(`${dest.host}/copy/busybox:arm`, creds), multi.images.arm64.manifestDigest);
        assert.ok(result.blobs.uploaded >= 2, 'config and layers uploaded');
        const again = await push(`${src.host}/busybox:multi`, `${dest.host}/copy/busybox:arm`, { ...options, arch: 'arm64' });
        assert.equal(again.result.blobs.uploaded, 0);
        assert.equal(again.result.blobs.exists, result.blobs.uploaded);
      } finally {
        await dest.stop();
      }
    });
  }

  it('--all copies the whole index; umoci unpacks each platform from the copy', async () => {
    const dest = await startRegistry();
    try {
      const { result } = await push(`${src.host}/busybox:multi`, `${dest.host}/all/busybox:multi`, { all: true, chunkBytes: 64 * 1024 });
      assert.equal(result.descriptor.digest, multi.indexDigest);
      assert.equal(await rawDigest(`${dest.host}/all/busybox:multi`), multi.indexDigest);
      const work = await tmpDir('vmimg-push-umoci-');
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--all', `docker://${dest.host}/all/busybox:multi`, `oci:${join(work, 'l')}:x`]);
      for (const arch of ['amd64', 'arm64']) {
        await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--override-arch', arch, `docker://${dest.host}/all/busybox:multi`, `oci:${join(work, arch)}:x`]);
        await run('umoci', ['unpack', '--image', `${join(work, arch)}:x`, join(work, `b-${arch}`)]);
        assert.equal((await run('cat', [join(work, `b-${arch}`, 'rootfs', 'etc', 'arch')])).trim(), arch);
      }
    } finally {
      await dest.stop();
    }
  });

  it('mounts blobs from another repository of the same registry instead of uploading', async () => {
    const { result, events } = await push(`${src.host}/busybox:multi`, `${src.host}/other/busybox:amd`);
    assert.equal(result.descriptor.digest, multi.images.amd64.manifestDigest);
    assert.equal(result.blobs.uploaded, 0);
    assert.ok(result.blobs.mounted >= 2, JSON.stringify(result.blobs));
    assert.ok(events.some((e) => e.type === 'blob' && e.state === 'mounted'));
    assert.equal(await rawDigest(`${src.host}/other/busybox:amd`), multi.images.amd64.manifestDigest);
  });
});

describe('push to an OCI layout directory', () => {
  it('writes a layout umoci unpacks, named by its tag, with the source digest', async () => {
    const work = await tmpDir('vmimg-push-layout-');
    const layout = join(work, 'layout');
    const sink = new OciLayoutSink(layout);
    const source = await pushSourceFromReader(new RegistryBlobReader(client, parseReference(`${src.host}/busybox:multi`)), { platform: { os: 'linux', architecture: 'arm64' } });
    const result = await pushImage(source, sink, { tag: 'v1' });
    assert.equal(result.descriptor.digest, multi.images.arm64.manifestDigest);
    await run('umoci', ['unpack', '--image', `${layout}:v1`, join(work, 'bundle')]);
    assert.equal((await run('cat', [join(work, 'bundle', 'rootfs', 'etc', 'arch')])).trim(), 'arm64');
    const raw = await runBuffer('skopeo', ['inspect', '--raw', `oci:${layout}:v1`]);
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, multi.images.arm64.manifestDigest);
  });
});
