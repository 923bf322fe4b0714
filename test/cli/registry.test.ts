/**
 * vmimg against the real registry (docker-registry on loopback, images pushed by skopeo): pull per
 * architecture, reading pulled images by reference, --platforms without pulling, validate
 * --check-registry, and the exit codes for not found (3), auth (4) and platform mismatch (5).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit, jsonLines } from './run.js';

let open: RunningRegistry;
let locked: RunningRegistry;
let indexDigest: string;

before(async () => {
  [open, locked] = await Promise.all([startRegistry(), startRegistry({ auth: 'htpasswd', users: { tester: 'secret' } })]);
  const multi = await buildMultiArchLayout('clitest');
  indexDigest = await pushLayout(multi.ref, open.host, 'busybox:multi', { all: true });
  await pushLayout(multi.ref, locked.host, 'private/busybox:1', { all: true, creds: locked.creds! });
});

after(async () => {
  await Promise.all([open?.stop(), locked?.stop()]);
});

describe('vmimg pull', () => {
  it('pulls each architecture and prints name, platform, id and dir', async () => {
    const cache = await tmpDir('vmimg-cli-reg-');
    const ref = `${open.host}/busybox:multi`;
    const ids = new Set<string>();
    const manifests = new Map<string, string>();
    for (const [arch, platform] of [
      ['amd64', 'linux/amd64'],
      ['arm64', 'linux/arm64/v8'],
    ] as const) {
      const r = await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', arch, '--json', '--concurrency', '1']);
      const out = JSON.parse(r.stdout) as { name: string; platform: string; id: string; dir: string; indexDigest: string; manifestDigest: string };
      assert.equal(out.name, ref);
      assert.match(out.manifestDigest, /^sha256:[0-9a-f]{64}$/);
      manifests.set(arch, out.manifestDigest);
      assert.match(out.platform, new RegExp(`^${platform.split('/').slice(0, 2).join('/')}`));
      assert.equal(out.indexDigest, indexDigest);
      assert.ok(readdirSync(out.dir).includes('config.json'));
      ids.add(out.id);
      const events = jsonLines(r.stderr) as { progress: { type: string; state: string } }[];
      assert.ok(events.some((e) => e.progress.type === 'layer' && e.progress.state === 'downloading'), 'download progress on stderr');
      assert.ok(events.some((e) => e.progress.type === 'image' && e.progress.state === 'done'));
      // The pulled image is now read by its reference, from the cache.
      const cat = await expectExit(0, ['--cache-dir', cache, 'cat', ref, '/etc/arch', '--arch', arch]);
      assert.equal(cat.stdout.trim(), arch);
    }
    assert.equal(ids.size, 2);
    const human = await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--platform', 'linux/arm64/v8']);
    assert.match(human.stdout, new RegExp(`^name: +${ref.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(human.stdout, /^platform: +linux\/arm64/m);
    assert.match(human.stdout, /^id: +sha256:[0-9a-f]{64}$/m);
    assert.match(human.stdout, /^dir: +\//m);
    assert.match(human.stdout, new RegExp(`^digest: +${manifests.get('arm64')}$`, 'm'), 'the manifest digest, to pin the image');
    assert.match(human.stderr, /layer 1\/\d+ [0-9a-f]{12}: cached/, 'plain log lines when stderr is not a TTY');
  });

  it('pulls an image that is not cached yet when another command names it', async () => {
    const cache = await tmpDir('vmimg-cli-reg-');
    const r = await expectExit(0, ['--cache-dir', cache, 'ls', `${open.host}/busybox:multi`, '/etc/arch', '--arch', 'arm64', '--json', '-q']);
    const [entry] = jsonLines(r.stdout) as { path: string; size: number }[];
    assert.deepEqual([entry?.path, entry?.size], ['/etc/arch', 6]);
  });

  it('exits 3 for a tag or repository the registry does not have', async () => {
    const cache = await tmpDir('vmimg-cli-reg-');
    for (const ref of [`${open.host}/busybox:nope`, `${open.host}/nothing/here:1`]) {
      const r = await expectExit(3, ['--cache-dir', cache, 'pull', ref, '-q']);
      assert.match(r.stderr, /^vmimg: ERR_NOT_FOUND: pulling /);
    }
  });

  it('exits 5 when the index has no image for the platform', async () => {
    const r = await expectExit(5, ['--cache-dir', await tmpDir('vmimg-cli-reg-'), 'pull', `${open.host}/busybox:multi`, '--arch', 's390x']);
    assert.match(r.stderr, /s390x/);
  });

  it('exits 4 without credentials or with a wrong password, and pulls with --password-stdin', async () => {
    const cache = await tmpDir('vmimg-cli-reg-');
    const ref = `${locked.host}/private/busybox:1`;
    const none = await expectExit(4, ['--cache-dir', cache, 'pull', ref, '--arch', 'amd64']);
    assert.match(none.stderr, /^hint: /m);
    const wrong = await expectExit(4, ['--cache-dir', cache, 'pull', ref, '--arch', 'amd64', '--username', 'tester', '--password-stdin'], {
      input: 'not-the-password\n',
    });
    assert.doesNotMatch(wrong.stderr + wrong.stdout, /not-the-password/, 'never prints the secret');
    const ok = await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', 'amd64', '--username', 'tester', '--password-stdin'], {
      input: 'secret\n',
    });
    assert.doesNotMatch(ok.stderr + ok.stdout, /secret/);
    assert.match(ok.stdout, /^platform: +linux\/amd64$/m);
  });
});

describe('vmimg inspect --platforms / validate --check-registry', () => {
  it('lists the platforms of a remote index without pulling', async () => {
    const cache = await tmpDir('vmimg-cli-reg-');
    const r = await expectExit(0, ['--cache-dir', cache, 'inspect', `${open.host}/busybox:multi`, '--platforms', '--json']);
    const out = JSON.parse(r.stdout) as { platforms: { platform: string; digest: string }[] };
    assert.deepEqual(out.platforms.map((p) => p.platform), ['linux/amd64', 'linux/arm64'], 'one spelling of arm64: linux/arm64 (the index says arm64/v8)');
    for (const p of out.platforms) assert.match(p.digest, /^sha256:[0-9a-f]{64}$/);
    const human = await expectExit(0, ['--cache-dir', cache, 'inspect', `${open.host}/busybox:multi`, '--platforms']);
    assert.match(human.stdout, /^linux\/arm64\tsha256:/m);
    assert.deepEqual(JSON.parse((await expectExit(0, ['--cache-dir', cache, 'images', '--json'])).stdout), [], 'nothing pulled');
    await expectExit(3, ['--cache-dir', cache, 'inspect', `${open.host}/busybox:nope`, '--platforms']);
    await expectExit(4, ['--cache-dir', cache, 'inspect', `${locked.host}/private/busybox:1`, '--platforms']);
  });

  it('--insecure-registry takes one value per occurrence, before the REF too (repeatable)', async () => {
    const cache = await tmpDir('vmimg-cli-insecure-');
    const ref = `${open.host}/busybox:multi`;
    const r = await expectExit(0, ['--cache-dir', cache, 'pull', '--insecure-registry', open.host, '--insecure-registry', 'mirror.invalid', ref, '--arch', 'amd64', '--json']);
    assert.equal((JSON.parse(r.stdout) as { name: string }).name, ref);
    const bare = await expectExit(2, ['--cache-dir', cache, 'pull', ref, '--insecure-registry']);
    assert.match(bare.stderr, /insecure-registry/);
  });

  it('checks that a reference exists', async () => {
    const r = await expectExit(0, ['validate', `${open.host}/busybox:multi`, '--check-registry', '--insecure-registry', open.host, '--json']);
    const out = JSON.parse(r.stdout) as { digest: string; mediaType: string; canonical: string };
    assert.equal(out.digest, indexDigest);
    assert.equal(out.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(out.canonical, `${open.host}/busybox:multi`);
    await expectExit(3, ['validate', `${open.host}/busybox:nope`, '--check-registry']);
    await expectExit(0, ['validate', `${open.host}/busybox:nope`], {}); // grammar only: no network
    const auth = await expectExit(0, ['validate', `${locked.host}/private/busybox:1`, '--check-registry', '--username', 'tester', '--password-stdin'], {
      input: 'secret',
    });
    assert.match(auth.stdout, /\tsha256:[0-9a-f]{64}\t/);
  });
});
