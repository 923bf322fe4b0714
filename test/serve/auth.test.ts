/**
 * `vmimg serve --htpasswd FILE`: client auth against an htpasswd file made by Apache's `htpasswd -B`
 * (apache2-utils), as the CNCF registry's. No or wrong credentials: 401 with a Basic challenge and the
 * spec's UNAUTHORIZED JSON, before anything is read or fetched (the upstream's access log and the
 * cache dir stay untouched). Clients with credentials: curl, skopeo (`--src-creds`) and `vmimg pull`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isVmimgError } from '../../src/index.js';
import { startServe, type RunningServe } from '../../src/serve/index.js';
import { Htpasswd } from '../../src/serve/htpasswd.js';
import type { ServeError } from '../../src/serve/errors.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { curl } from '../helpers/curl.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';

let registry: RunningRegistry;
let serve: RunningServe;
let cacheDir: string;
let htpasswd: string;
let layer: string;
let manifestDigest: string;

/** Blob files (complete or partial) in serve's cache. */
const cachedBlobs = (): string[] =>
  ['blobs/sha256', 'partial'].flatMap((d) => (existsSync(join(cacheDir, d)) ? readdirSync(join(cacheDir, d)) : []));
let pushed = 0; // requests of the push that made the image
const upstreamRequests = () => registry.accessLog().length - pushed;

before(async () => {
  requireTools(['htpasswd', 'curl']);
  registry = await startRegistry({ accessLog: true });
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-auth' });
  manifestDigest = await pushLayout(image.ref, registry.host, 'lib/busybox:1');
  const manifest = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  layer = manifest.layers[0]!.digest;
  const dir = await tmpDir('vmimg-serve-auth-');
  htpasswd = join(dir, 'htpasswd');
  const lines = [await run('htpasswd', ['-Bbn', 'fleet', 'hunter2']), await run('htpasswd', ['-Bbn', '-C', '6', 'ci', 'other pass:with colon'])];
  writeFileSync(htpasswd, `# made by htpasswd -B\n${lines.map((l) => l.trim()).join('\n')}\n`);
  cacheDir = join(dir, 'cache');
  pushed = registry.accessLog().length;
  serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, htpasswd });
});

after(async () => {
  await serve?.shutdown();
  await registry?.stop();
});

describe('serve: client auth (--htpasswd)', () => {
  it('no credentials: 401 with a Basic challenge and UNAUTHORIZED, on /v2/, manifests, blobs and HEAD', async () => {
    for (const [path, args] of [['/v2/', []], ['/v2/lib/busybox/manifests/1', []], [`/v2/lib/busybox/blobs/${layer}`, ['-I']], ['/metrics', []]] as const) {
      const r = await curl(`${serve.url}${path}`, [...args]);
      assert.equal(r.status, 401, path);
      assert.match(r.headers['www-authenticate'] ?? '', /^Basic realm="[^"]+"$/, path);
      assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
      if (args.length === 0) assert.equal(r.json<{ errors: { code: string }[] }>().errors[0]!.code, 'UNAUTHORIZED', path);
    }
    assert.equal(upstreamRequests(), 0);
  });

  it('a wrong password or unknown user: 401 UNAUTHORIZED, nothing fetched, nothing cached', async () => {
    for (const creds of ['fleet:wrong', 'nobody:hunter2', 'fleet:', 'fleet']) {
      const r = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer}`, ['-u', creds]);
      assert.equal(r.status, 401, creds);
      const e = r.json<{ errors: { code: string; detail: { vmimg: string } }[] }>().errors[0]!;
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.equal(e.detail.vmimg, 'ERR_UNAUTHORIZED');
    }
    const garbage = await curl(`${serve.url}/v2/`, ['-H', 'Authorization: Basic !!!']);
    assert.equal(garbage.status, 401);
    assert.equal(upstreamRequests(), 0, 'the upstream was never asked');
    assert.deepEqual(cachedBlobs(), [], 'nothing cached');
  });

  it('curl with the right credentials gets the manifest and the blob (a password holding a colon too)', async () => {
    const m = await curl(`${serve.url}/v2/lib/busybox/manifests/1`, ['-u', 'fleet:hunter2', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json']);
    assert.equal(m.status, 200);
    assert.equal(m.headers['docker-content-digest'], manifestDigest);
    const b = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer}`, ['-u', 'ci:other pass:with colon', '-r', '0-9']);
    assert.equal(b.status, 206);
    assert.equal(b.body.length, 10);
  });

  it('skopeo copies with --src-creds and is refused without them', async () => {
    requireTools(['skopeo']);
    const layout = join(await tmpDir('vmimg-serve-auth-skopeo-'), 'layout');
    const src = `docker://${serve.host}/lib/busybox:1`;
    await assert.rejects(run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', src, `oci:${layout}:x`]), /401|unauthorized|authentication required/i);
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--src-creds', 'fleet:hunter2', src, `oci:${layout}:copy`]);
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.ok(index.manifests.some((d) => d.digest === manifestDigest));
  });

  it('vmimg pull logs in with --password-stdin; a wrong password is ERR_UNAUTHORIZED (exit 4)', async () => {
    const ref = `${serve.host}/lib/busybox:1`;
    const args = ['pull', ref, '--arch', 'amd64', '--json', '--username', 'fleet', '--password-stdin'];
    const refused = await expectExit(4, [...args, '--cache-dir', await tmpDir('vmimg-serve-auth-pull-')], { input: 'nope\n' });
    assert.match(refused.stderr, /ERR_UNAUTHORIZED/);
    const pulled = await expectExit(0, [...args, '--cache-dir', await tmpDir('vmimg-serve-auth-pull-')], { input: 'hunter2\n' });
    assert.equal((JSON.parse(pulled.stdout) as { manifestDigest: string }).manifestDigest, manifestDigest);
  });

  it('wrong logins in parallel: 2 bcrypt checks at once, a bounded queue, 429 beyond it; a remembered login never waits', async () => {
    const auth = Htpasswd.load(htpasswd, { maxChecks: 2, maxQueue: 4 });
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    assert.equal(await auth.check(basic('fleet', 'hunter2')), 'fleet'); // remembered from now on
    const bad = Array.from({ length: 12 }, (_, i) => auth.check(basic('fleet', `wrong${i}`)).then(() => 200, (e: ServeError) => e.status));
    assert.deepEqual([auth.running, auth.queued, auth.refusedBusy], [2, 4, 6]);
    // answered before any queued check got a turn: no bcrypt finished meanwhile
    assert.equal(await auth.check(basic('fleet', 'hunter2')), 'fleet');
    assert.deepEqual([auth.running, auth.queued], [2, 4]);
    const statuses = await Promise.all(bad);
    assert.deepEqual([statuses.filter((s) => s === 401).length, statuses.filter((s) => s === 429).length], [6, 6]);
    assert.deepEqual([auth.running, auth.queued], [0, 0]);
    await assert.rejects(Htpasswd.load(htpasswd, { maxChecks: 1, maxQueue: 0 }).check(basic('x', 'y')), /wrong user name or password/);
  });

  it('bcrypt runs in worker threads: a flood of wrong logins leaves the event loop idle (breaker5 B4)', async () => {
    // cost 10: each check ~0.1 s of bcryptjs, which on the event loop kept it busy the whole flood
    const file = join(await tmpDir('vmimg-serve-auth-slow-'), 'htpasswd');
    writeFileSync(file, await run('htpasswd', ['-Bbn', '-C', '10', 'slow', 'right']));
    const auth = Htpasswd.load(file, { maxChecks: 2, maxQueue: 8 });
    const basic = (password: string) => `Basic ${Buffer.from(`slow:${password}`).toString('base64')}`;
    try {
      assert.deepEqual(await Promise.all([auth.check(basic('right')), auth.check(basic('right again'))].map((p) => p.catch(() => 'refused'))), ['slow', 'refused']); // both workers started
      const before = performance.eventLoopUtilization();
      const statuses = await Promise.all(Array.from({ length: 6 }, (_, i) => auth.check(basic(`wrong${i}`)).then(() => 200, (e: ServeError) => e.status)));
      const { utilization } = performance.eventLoopUtilization(before);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401]);
      // a share of the loop's time, not a duration: ~1 with bcrypt on the loop, near 0 with workers, whatever the load
      assert.ok(utilization < 0.5, `event loop busy ${(utilization * 100).toFixed(0)} % of the flood`);
    } finally {
      await auth.close();
    }
  });

  it('an htpasswd file that is missing, names no user, or holds a non-bcrypt entry is one coded error naming it', async () => {
    const dir = await tmpDir('vmimg-serve-auth-bad-');
    const md5 = join(dir, 'md5');
    writeFileSync(md5, (await run('htpasswd', ['-mbn', 'old', 'pass'])).trim() + '\n');
    const empty = join(dir, 'empty');
    writeFileSync(empty, '# nobody\n');
    for (const [file, message] of [[join(dir, 'missing'), /cannot read it \(ENOENT\)/], [md5, /line 1: not a user:bcrypt-hash entry/], [empty, /names no user/]] as const) {
      await assert.rejects(startServe({ cacheDir: join(dir, 'cache'), listen: '127.0.0.1:0', upstream: registry.url, htpasswd: file }), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_INVALID_ARGUMENT'), String(err));
        assert.match((err as Error).message, message);
        assert.ok((err as Error).message.includes(file));
        return true;
      });
    }
  });
});
