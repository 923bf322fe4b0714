/**
 * One image (one config digest, one image dir in the cache) arriving by two routes: pulled from a real
 * registry and loaded from a classic `docker save` tar that skopeo wrote from the same layout. Each name
 * keeps the source it came by, so the pulled name still pushes byte for byte from the store (its
 * manifest and gzip layer blobs survive `prune`), while the tar's name pushes as the tar does (a built
 * manifest, and a note). A load under the pulled name itself takes the name over, says so, and a push
 * of the name then reads the tar; a pull takes it back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxLayout, pushLayout, toDockerArchive, type BuiltImage } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, runBuffer, tmpDir } from '../helpers/tools.js';
import { expectExit, vmimg } from '../cli/run.js';

let src: RunningRegistry;
let dest: RunningRegistry;
let proxy: FaultProxy;
let image: BuiltImage;
let work: string;

before(async () => {
  requireTools(['skopeo', 'umoci']);
  [src, dest, image, work] = await Promise.all([
    startRegistry(),
    startRegistry(),
    buildBusyboxLayout({ arch: 'amd64', tag: 'twice', extraLayers: [{ files: { 'etc/twice': 'yes\n' } }] }),
    tmpDir('vmimg-cached-sources-'),
  ]);
  await pushLayout(image.ref, src.host, 'twice:1');
  proxy = await startFaultProxy(src.url);
});

after(async () => {
  await proxy?.stop();
  await Promise.all([src?.stop(), dest?.stop()]);
});

interface Printed {
  id: string;
  source: string;
  manifestDigest?: string;
}

async function rawDigest(ref: string): Promise<string> {
  const raw = await runBuffer('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

describe('an image pulled and loaded under two names', () => {
  it('a load from a docker save tar after a pull leaves the pulled name its registry source', async () => {
    const cache = join(work, 'cache');
    const ref = `${proxy.host}/twice:1`;
    const pulled = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--json'])).stdout) as Printed;
    const tar = await toDockerArchive(image, join(work, 'classic.tar'), 'twice:classic');
    const loaded = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'load', tar, '--json'])).stdout) as Printed;
    assert.equal(loaded.id, pulled.id, 'premise: skopeo kept the config, so both are one image dir');
    assert.equal(loaded.source, 'docker-archive');
    await expectExit(0, ['--cache-dir', cache, 'prune']);
    proxy.clear();

    const shown = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'inspect', ref, '--json'])).stdout) as { config: { source: { kind: string; manifestDigest?: string } } };
    assert.deepEqual([shown.config.source.kind, shown.config.source.manifestDigest], ['registry', image.manifestDigest]);
    const r = await expectExit(0, ['--cache-dir', cache, 'push', ref, `${dest.host}/twice:1`, '--json']);
    assert.equal((JSON.parse(r.stdout) as { digest: string }).digest, image.manifestDigest);
    assert.equal(await rawDigest(`${dest.host}/twice:1`), image.manifestDigest);
    assert.deepEqual(proxy.requests, [], 'pushed from the store: the gzip layers survived the load and prune');

    // The tar's own name still means the tar's image: no manifest of its own, so it pushes as the tar does.
    const fromTar = await expectExit(0, ['--cache-dir', cache, 'push', 'twice:classic', `${dest.host}/twice:2`, '--json']);
    assert.match(fromTar.stdout, /classic docker save/);
    assert.notEqual((JSON.parse(fromTar.stdout) as { digest: string }).digest, image.manifestDigest, 'a manifest built over the tar');
  });
});

describe('a load under the name of an earlier pull (breaker4 F12)', () => {
  it('takes the name and says so; push NAME pushes what the name now means, and a pull takes it back', async () => {
    const cache = join(work, 'cache-same');
    const ref = `${src.host}/twice:1`;
    const run = (args: string[]) => expectExit(0, ['--cache-dir', cache, ...args]);
    await run(['pull', ref]);
    const tar = await toDockerArchive(image, join(work, 'same-name.tar'), ref);
    const loaded = await run(['load', tar]);
    assert.ok(loaded.stderr.includes(`${ref} now names the image loaded from the docker save tar ${tar}`), loaded.stderr);
    assert.match(loaded.stderr, new RegExp(`it named the same image pulled from ${ref.replace(/[.]/g, '\\.')} before`));
    assert.doesNotMatch((await run(['load', tar])).stderr, /now names/, 'the same source again changes nothing');

    const fromTar = JSON.parse((await run(['push', ref, `${dest.host}/twice:3`, '--json'])).stdout) as { digest: string; notes: string[] };
    assert.notEqual(fromTar.digest, image.manifestDigest, 'the tar has no manifest: one is built');
    assert.match(fromTar.notes.join('\n'), /classic docker save/);
    assert.equal(await rawDigest(`${dest.host}/twice:3`), fromTar.digest);

    const pulled = await run(['pull', ref]);
    assert.match(pulled.stderr, /now names the image pulled from/);
    const fromRegistry = JSON.parse((await run(['push', ref, `${dest.host}/twice:4`, '--json'])).stdout) as { digest: string };
    assert.equal(fromRegistry.digest, image.manifestDigest, 'byte for byte again');

    await run(['load', tar]);
    rmSync(tar);
    const gone = await vmimg(['--cache-dir', cache, 'push', ref, `${dest.host}/twice:5`]);
    assert.equal(gone.code, 3, gone.stderr);
    assert.ok(gone.stderr.includes(`ERR_NOT_FOUND: cached image ${ref} was loaded from ${tar}`), gone.stderr);
  });
});
