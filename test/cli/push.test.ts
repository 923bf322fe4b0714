/**
 * `vmimg push` against real registries (docker-registry on loopback), faults from the loopback fault
 * proxy in front of them: a 5xx during an upload (retried and resumed; persistent → coded error), a
 * registry that declines a cross-repository mount (falls back to upload), a 401 on the manifest PUT and
 * a token server that grants no push (ERR_UNAUTHORIZED), each leaving no manifest published; and a push
 * killed with SIGKILL mid-blob, whose rerun uploads only what is missing; a store blob changed on disk
 * (pushed unhashed: it was verified on entry) is refused by the registry's own digest check.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildMultiArchLayout, pushLayout, type MultiArchImage } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';
import { expectExit, jsonLines, vmimg } from './run.js';

let src: RunningRegistry;
let multi: MultiArchImage;
let env: Record<string, string>;

before(async () => {
  requireTools(['skopeo']);
  [src, multi] = await Promise.all([startRegistry(), buildMultiArchLayout('clipush')]);
  await pushLayout(multi.ref, src.host, 'busybox:multi', { all: true });
  const config = join(await tmpDir('vmimg-push-cfg-'), 'config.json');
  writeFileSync(config, JSON.stringify({ network: { retryAttempts: 2 } })); // a persistent fault gives up fast
  env = { VMIMG_CONFIG: config };
});

after(async () => {
  await src?.stop();
});

/** Exit status of `skopeo inspect --raw` of a reference: 0 when the registry has a manifest for it. */
async function published(ref: string): Promise<boolean> {
  return run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]).then(
    () => true,
    () => false,
  );
}

/** sha256 of what `skopeo inspect --raw` gets for `ref`. */
async function rawDigest(ref: string): Promise<string> {
  const raw = await runBuffer('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

/** The config and layer digests of a manifest in the fixture layout (read as JSON from its blob). */
function manifestBlobs(digest: string): { config: string; layers: string[] } {
  const m = JSON.parse(readFileSync(join(multi.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  return { config: m.config.digest, layers: m.layers.map((l) => l.digest) };
}

async function withDest<T>(body: (dest: RunningRegistry, proxy: FaultProxy) => Promise<T>): Promise<T> {
  const dest = await startRegistry();
  const proxy = await startFaultProxy(dest.url, { forwardedHost: true });
  try {
    return await body(dest, proxy);
  } finally {
    await proxy.stop();
    await dest.stop();
  }
}

const manifestPuts = (proxy: FaultProxy) => proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/'));

describe('vmimg push', () => {
  it('prints the pushed digest (--json too); a 5xx mid-upload is retried from the offset the registry confirms', () =>
    withDest(async (_dest, proxy) => {
      // The first chunk goes through, the second meets a 503: the retry asks where to go on from.
      proxy.add({ method: 'PATCH', path: '/blobs/uploads/', fault: { kind: 'strip-headers', headers: [] }, times: 1 });
      proxy.add({ method: 'PATCH', path: '/blobs/uploads/', fault: { kind: 'status', status: 503 }, times: 1 });
      const to = `${proxy.host}/app:1`;
      const r = await expectExit(0, ['push', `${src.host}/busybox:multi`, to, '--arch', 'arm64', '--chunk-size', '128K', '--json'], { env });
      const out = JSON.parse(r.stdout) as { pushed: string; digest: string; blobs: { uploaded: number } };
      assert.equal(out.digest, multi.images.arm64.manifestDigest);
      assert.equal(out.pushed, to);
      const status = proxy.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/uploads/'));
      assert.ok(status.length >= 1, 'asked the registry how much of the upload it holds');
      assert.ok(proxy.requests.filter((q) => q.method === 'POST' && q.path.includes('/blobs/uploads/')).length <= out.blobs.uploaded, 'no upload restarted');
      assert.ok(await published(to));
      const human = await expectExit(0, ['push', `${src.host}/busybox:multi`, to, '--arch', 'arm64'], { env });
      assert.match(human.stdout, new RegExp(`^digest: +${multi.images.arm64.manifestDigest}$`, 'm'));
      assert.match(human.stdout, /^blobs: +0 uploaded .*already there$/m);
    }));

  it('a persistent 5xx during an upload is ERR_REGISTRY_UNAVAILABLE and publishes no manifest', () =>
    withDest(async (_dest, proxy) => {
      proxy.add({ method: 'PUT', path: '/blobs/uploads/', fault: { kind: 'status', status: 500 } });
      const to = `${proxy.host}/app:broken`;
      const r = await vmimg(['push', `${src.host}/busybox:multi`, to, '--arch', 'amd64'], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /ERR_REGISTRY_UNAVAILABLE/);
      assert.equal(manifestPuts(proxy).length, 0, 'no manifest PUT before every blob is confirmed');
      assert.equal(await published(to), false);
    }));

  it('a registry declining a cross-repository mount gets the blobs uploaded instead', async () => {
    const proxy = await startFaultProxy(src.url, { forwardedHost: true });
    try {
      proxy.add({ method: 'POST', path: 'mount=', fault: { kind: 'status', status: 202 } });
      const r = await expectExit(0, ['push', `${proxy.host}/busybox:multi`, `${proxy.host}/declined/busybox:1`, '--arch', 'amd64', '--json'], { env });
      const out = JSON.parse(r.stdout) as { digest: string; blobs: { uploaded: number; mounted: number } };
      assert.equal(out.digest, multi.images.amd64.manifestDigest);
      assert.equal(out.blobs.mounted, 0);
      assert.ok(out.blobs.uploaded >= 2);
      assert.ok(proxy.requests.some((q) => q.fault === 'status'), 'the mount was tried');
      proxy.clear();
      const again = await expectExit(0, ['push', `${proxy.host}/busybox:multi`, `${proxy.host}/mounted/busybox:1`, '--arch', 'amd64', '--json'], { env });
      assert.ok((JSON.parse(again.stdout) as { blobs: { mounted: number } }).blobs.mounted >= 2);
    } finally {
      await proxy.stop();
    }
  });

  it('a 401 on the manifest PUT is ERR_UNAUTHORIZED (exit 4) and leaves the tag unpublished', () =>
    withDest(async (_dest, proxy) => {
      proxy.add({ method: 'PUT', path: '/manifests/', fault: { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="push"' } } });
      const to = `${proxy.host}/app:denied`;
      const r = await vmimg(['push', `${src.host}/busybox:multi`, to, '--arch', 'amd64'], { env });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /ERR_UNAUTHORIZED/);
      assert.equal(await published(to), false);
    }));

  it('a token server granting anonymous pull only: ERR_UNAUTHORIZED naming the push scope, nothing published', async () => {
    const dest = await startRegistry({ auth: 'token' });
    try {
      const r = await vmimg(['push', `${src.host}/busybox:multi`, `${dest.host}/app:1`, '--arch', 'amd64'], { env });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /repository:app:pull,push/);
      assert.ok(dest.issuer!.requests.some((q) => (q.params.scope ?? '').includes('repository:app:pull,push')), 'asked for push scope');
      const ok = await expectExit(0, ['push', `${src.host}/busybox:multi`, `${dest.host}/app:1`, '--arch', 'amd64', '--username', 'tester', '--password-stdin', '--json'], { env, input: 'secret\n' });
      assert.equal((JSON.parse(ok.stdout) as { digest: string }).digest, multi.images.amd64.manifestDigest);
    } finally {
      await dest.stop();
    }
  });

  it('bytes that do not hash to their descriptor are never completed: ERR_DIGEST_MISMATCH (exit 6), blob and tag absent', () =>
    withDest(async (dest, proxy) => {
      const srcProxy = await startFaultProxy(src.url);
      try {
        const blobs = manifestBlobs(multi.images.amd64.manifestDigest);
        const layer = blobs.layers[0]!;
        srcProxy.add({ method: 'GET', path: `/blobs/${layer}`, fault: { kind: 'corrupt' } });
        const to = `${proxy.host}/app:corrupt`;
        const r = await vmimg(['push', `${srcProxy.host}/busybox:multi`, to, '--arch', 'amd64'], { env });
        assert.equal(r.code, 6, r.stderr);
        assert.match(r.stderr, /ERR_DIGEST_MISMATCH/);
        const head = await fetch(`${dest.url}/v2/app/blobs/${layer}`, { method: 'HEAD' });
        assert.equal(head.status, 404, 'the registry never completed the corrupt upload');
        assert.equal(manifestPuts(proxy).length, 0);
        assert.equal(await published(to), false);
      } finally {
        await srcProxy.stop();
      }
    }));

  it('a store blob changed on disk after the pull (not hashed again on push) is refused by the registry: blob and tag absent', () =>
    withDest(async (dest, proxy) => {
      const cache = await tmpDir('vmimg-push-rot-');
      const name = `${src.host}/busybox:multi`;
      await expectExit(0, ['--cache-dir', cache, 'pull', name, '--arch', 'amd64', '-q']);
      const layer = manifestBlobs(multi.images.amd64.manifestDigest).layers[0]!;
      const file = join(cache, 'blobs', 'sha256', layer.slice(7));
      const bytes = readFileSync(file);
      bytes[bytes.length >> 1]! ^= 0xff; // bit rot, or a hand that edited the cache
      chmodSync(file, 0o644);
      writeFileSync(file, bytes);
      const to = `${proxy.host}/app:rot`;
      const r = await vmimg(['--cache-dir', cache, 'push', name, to, '--arch', 'amd64'], { env });
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, /ERR_REGISTRY_ERROR: upload of blob .*DIGEST_INVALID/);
      const head = await fetch(`${dest.url}/v2/app/blobs/${layer}`, { method: 'HEAD' });
      assert.equal(head.status, 404, 'the registry never completed the changed blob');
      assert.equal(manifestPuts(proxy).length, 0);
      assert.equal(await published(to), false);
    }));

  it('a registry confirming another digest than the one uploaded is ERR_DIGEST_MISMATCH', () =>
    withDest(async (_dest, proxy) => {
      const wrong = `sha256:${'0'.repeat(64)}`;
      proxy.add({ method: 'PUT', path: '/blobs/uploads/', fault: { kind: 'status', status: 201, headers: { 'docker-content-digest': wrong } } });
      const r = await vmimg(['push', `${src.host}/busybox:multi`, `${proxy.host}/app:lying`, '--arch', 'amd64'], { env });
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, new RegExp(`ERR_DIGEST_MISMATCH.*${wrong.slice(0, 20)}|${wrong.slice(0, 20)}[^]*ERR_DIGEST_MISMATCH`));
      assert.equal(manifestPuts(proxy).length, 0);
    }));

  it('a push killed with SIGKILL mid-blob, rerun, uploads only the blobs still missing', () =>
    withDest(async (dest) => {
      const srcProxy = await startFaultProxy(src.url);
      try {
        const blobs = manifestBlobs(multi.images.amd64.manifestDigest);
        const last = blobs.layers[blobs.layers.length - 1]!;
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        let reached!: () => void;
        const atHold = new Promise<void>((resolve) => (reached = resolve));
        srcProxy.add({ method: 'GET', path: `/blobs/${last}`, fault: { kind: 'hold', afterBytes: 1024, reached, release: held } });
        const to = `${dest.host}/app:resumed`;
        const args = ['push', `${srcProxy.host}/busybox:multi`, to, '--arch', 'amd64', '--concurrency', '1', '--json'];
        const killed = vmimg(args, { env, onSpawn: (child) => void atHold.then(() => setTimeout(() => child.kill('SIGKILL'), 200)) });
        const first = await killed;
        release();
        assert.equal(first.signal, 'SIGKILL');
        assert.equal(await published(to), false);
        srcProxy.clear();
        const r = await expectExit(0, args, { env });
        const events = jsonLines(r.stderr) as { progress: { type: string; digest: string; state: string } }[];
        const final = new Map(events.filter((e) => e.progress.type === 'blob').map((e) => [e.progress.digest, e.progress.state]));
        assert.equal(final.get(blobs.config), 'exists', 'the config uploaded before the kill is not sent again');
        assert.equal(final.get(last), 'uploaded');
        assert.equal((JSON.parse(r.stdout) as { digest: string }).digest, multi.images.amd64.manifestDigest);
        assert.ok(await published(to));
      } finally {
        await srcProxy.stop();
      }
    }));

  it('a chunked upload killed with SIGKILL mid-blob continues the registry upload session at its offset on a rerun', () =>
    withDest(async (_dest, proxy) => {
      const srcProxy = await startFaultProxy(src.url);
      try {
        const blobs = manifestBlobs(multi.images.amd64.manifestDigest);
        const last = blobs.layers[blobs.layers.length - 1]!;
        const size = statSync(join(multi.layout, 'blobs', 'sha256', last.slice(7))).size;
        const chunk = Math.ceil(size / 5); // four PATCHes and the closing PUT
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        let reached!: () => void;
        const atHold = new Promise<void>((resolve) => (reached = resolve));
        // each chunk reads its range of the source: two go through, the third stalls until the kill
        srcProxy.add({ method: 'GET', path: `/blobs/${last}`, fault: { kind: 'strip-headers', headers: [] }, times: 2 });
        srcProxy.add({ method: 'GET', path: `/blobs/${last}`, fault: { kind: 'hold', afterBytes: 16, reached, release: held } });
        const cache = join(await tmpDir('vmimg-push-resume-'), 'cache');
        const to = `${proxy.host}/app:chunked`;
        const args = ['--cache-dir', cache, 'push', `${srcProxy.host}/busybox:multi`, to, '--arch', 'amd64', '--concurrency', '1', '--chunk-size', String(chunk), '--json'];
        const first = await vmimg(args, { env, onSpawn: (child) => void atHold.then(() => setTimeout(() => child.kill('SIGKILL'), 200)) });
        release();
        assert.equal(first.signal, 'SIGKILL');
        const patched = proxy.requests.filter((q) => q.method === 'PATCH').map((q) => q.contentRange);
        assert.deepEqual(patched.slice(0, 2), [`0-${chunk - 1}`, `${chunk}-${2 * chunk - 1}`], 'two chunks sent before the kill (a third stalled)');
        srcProxy.clear();
        proxy.clear();
        const r = await expectExit(0, args, { env });
        assert.equal((JSON.parse(r.stdout) as { digest: string }).digest, multi.images.amd64.manifestDigest);
        const uploads = proxy.requests.filter((q) => q.path.includes('/blobs/uploads/'));
        assert.deepEqual(uploads.filter((q) => q.method === 'POST'), [], 'no new upload session');
        assert.ok(uploads.some((q) => q.method === 'GET'), 'asked the registry where the session stands');
        assert.deepEqual(
          uploads.filter((q) => q.method === 'PATCH').map((q) => q.contentRange),
          [`${2 * chunk}-${3 * chunk - 1}`, `${3 * chunk}-${4 * chunk - 1}`],
          'only the chunks after the confirmed offset are sent',
        );
        assert.ok(await published(to));
        assert.equal(await rawDigest(to), multi.images.amd64.manifestDigest);
      } finally {
        await srcProxy.stop();
      }
    }));
});
