// Basic (htpasswd) and Bearer (token server) auth against the real docker-registry.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isVmimgError } from '../../src/errors.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { RegistryBlobReader, listPlatforms } from '../../src/content/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';

const FAST = { retry: { baseDelayMs: 10, maxDelayMs: 50 }, env: {} } as const;

function clientFor(reg: RunningRegistry, extra: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ ...FAST, ...extra });
}

async function pushImage(reg: RunningRegistry, repoTag: string): Promise<string> {
  const image = await buildBusyboxLayout({ arch: 'amd64' });
  return pushLayout(image, reg.host, repoTag, reg.creds !== undefined ? { creds: reg.creds } : {});
}

function assertUnauthorized(err: unknown, registry: string): true {
  assert.ok(isVmimgError(err, 'ERR_UNAUTHORIZED'), String(err));
  assert.match(err.hint ?? '', /--username\/--password-stdin/);
  assert.match(err.hint ?? '', /VMIMG_REGISTRY_AUTH/);
  assert.match(err.hint ?? '', new RegExp(`docker login ${registry.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(`${err.message} ${err.hint}`, /secret|wrong-password/, 'no password in the error');
  return true;
}

describe('htpasswd Basic auth', () => {
  let reg: RunningRegistry;
  let digest: string;
  before(async () => {
    reg = await startRegistry({ auth: 'htpasswd', users: { tester: 'secret' } });
    digest = await pushImage(reg, 'basic/busybox:1');
  });
  after(() => reg?.stop());

  test('the right password pulls; ping reports basic', async () => {
    const client = clientFor(reg, { credentials: { [reg.host]: { username: 'tester', password: 'secret' } } });
    try {
      assert.deepEqual((await client.ping(reg.host)).authSchemes, ['basic']);
      const m = await client.fetchManifest({ registry: reg.host, repository: 'basic/busybox', tag: '1' });
      assert.equal(m.digest, digest);
    } finally {
      await client.close();
    }
  });

  test('a wrong password and no credentials are ERR_UNAUTHORIZED with a hint, without secrets', async () => {
    for (const credentials of [{ [reg.host]: { username: 'tester', password: 'wrong-password' } }, undefined]) {
      const client = clientFor(reg, credentials !== undefined ? { credentials } : {});
      try {
        await assert.rejects(client.resolve({ registry: reg.host, repository: 'basic/busybox', tag: '1' }), (e) => assertUnauthorized(e, reg.host));
      } finally {
        await client.close();
      }
    }
  });

  test('while a credential helper hangs, the stall notice names the helper, not the registry', async () => {
    const dir = await tmpDir('vmimg-auth-slowhelper-');
    const helper = join(dir, 'docker-credential-slow');
    // answers after 2 s, long past the 200 ms stall notice (a hanging helper, as in S08, cut short)
    writeFileSync(helper, `#!/bin/sh\nsleep 2\necho '{"Username":"tester","Secret":"secret"}'\n`);
    chmodSync(helper, 0o755);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'slow' } }));
    const notices: string[] = [];
    const client = clientFor(reg, {
      env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, DOCKER_CONFIG: dir },
      throughput: { stallNoticeMs: 200 },
      onNotice: (n) => notices.push(n.message),
    });
    try {
      const m = await client.fetchManifest({ registry: reg.host, repository: 'basic/busybox', tag: '1' });
      assert.equal(m.digest, digest);
    } finally {
      await client.close();
    }
    assert.ok(notices.length > 0, 'a stall was announced');
    for (const message of notices) assert.match(message, /^no answer from credential helper docker-credential-slow for /);
  });

  test('credentials from VMIMG_REGISTRY_AUTH work too', async () => {
    const env = { VMIMG_REGISTRY_AUTH: JSON.stringify({ [reg.host]: { username: 'tester', password: 'secret' } }) };
    const client = clientFor(reg, { env });
    try {
      assert.equal((await client.resolve({ registry: reg.host, repository: 'basic/busybox', tag: '1' })).digest, digest);
    } finally {
      await client.close();
    }
  });
});

describe('token auth (Bearer)', () => {
  let reg: RunningRegistry;
  let digest: string;
  before(async () => {
    reg = await startRegistry({ auth: 'token', users: { tester: 'secret' } });
    digest = await pushImage(reg, 'tok/busybox:1');
  });
  after(() => reg?.stop());

  test('anonymous: challenge → GET token → retry, then the token is reused for the scope', async () => {
    const issuer = reg.issuer!;
    issuer.requests.length = 0;
    const client = clientFor(reg);
    try {
      const ref = { registry: reg.host, repository: 'tok/busybox', tag: '1' };
      assert.equal((await client.resolve(ref)).digest, digest);
      await client.fetchManifest(ref);
      await listPlatforms(new RegistryBlobReader(client, ref));
      assert.equal(issuer.requests.length, 1, 'one token for three calls on one scope');
      const [req] = issuer.requests;
      assert.equal(req!.method, 'GET');
      assert.equal(req!.basicUser, undefined);
      assert.equal(req!.params.service, issuer.service);
      assert.equal(req!.params.scope, 'repository:tok/busybox:pull');
    } finally {
      await client.close();
    }
  });

  test('with credentials: OAuth2 POST first (grant_type=password)', async () => {
    const issuer = reg.issuer!;
    issuer.requests.length = 0;
    const client = clientFor(reg, { credentials: { [reg.host]: { username: 'tester', password: 'secret' } } });
    try {
      assert.equal((await client.resolve({ registry: reg.host, repository: 'tok/busybox', tag: '1' })).digest, digest);
      assert.deepEqual(
        issuer.requests.map((r) => [r.method, r.grantType, r.params.username, r.status]),
        [['POST', 'password', 'tester', 200]],
      );
      assert.equal(issuer.requests[0]!.params.password, '<redacted>');
    } finally {
      await client.close();
    }
  });

  test('a wrong password on the token server is ERR_UNAUTHORIZED', async () => {
    const client = clientFor(reg, { credentials: { [reg.host]: { username: 'tester', password: 'wrong-password' } } });
    try {
      await assert.rejects(client.resolve({ registry: reg.host, repository: 'tok/busybox', tag: '1' }), (e) => assertUnauthorized(e, reg.host));
    } finally {
      await client.close();
    }
  });

  test('an identity token is sent as grant_type=refresh_token', async () => {
    const issuer = reg.issuer!;
    issuer.options.refreshTokens = { 'refresh-abc': 'tester' };
    issuer.requests.length = 0;
    const client = clientFor(reg, { credentials: { [reg.host]: { identityToken: 'refresh-abc' } } });
    try {
      assert.equal((await client.resolve({ registry: reg.host, repository: 'tok/busybox', tag: '1' })).digest, digest);
      assert.deepEqual(issuer.requests.map((r) => [r.method, r.grantType]), [['POST', 'refresh_token']]);
    } finally {
      await client.close();
    }
  });
});

describe('token auth, server without the OAuth2 POST and without expires_in', () => {
  let reg: RunningRegistry;
  let digest: string;
  before(async () => {
    reg = await startRegistry({ auth: 'token', users: { tester: 'secret' }, issuer: { postStatus: 404, expiresIn: null } });
    digest = await pushImage(reg, 'tok/busybox:1');
  });
  after(() => reg?.stop());

  test('POST answered 404 falls back to GET with Basic; token reused', async () => {
    const issuer = reg.issuer!;
    issuer.requests.length = 0;
    const client = clientFor(reg, { credentials: { [reg.host]: { username: 'tester', password: 'secret' } } });
    try {
      const ref = { registry: reg.host, repository: 'tok/busybox', tag: '1' };
      assert.equal((await client.resolve(ref)).digest, digest);
      await client.fetchManifest(ref);
      assert.deepEqual(
        issuer.requests.map((r) => [r.method, r.status, r.basicUser]),
        [
          ['POST', 404, undefined],
          ['GET', 200, 'tester'],
        ],
      );
    } finally {
      await client.close();
    }
  });

  test('without expires_in a token lives 60 s: reused within the minute, fetched again after it', async () => {
    const issuer = reg.issuer!;
    let clock = 1_000_000;
    const client = clientFor(reg, { now: () => clock });
    try {
      const ref = { registry: reg.host, repository: 'tok/busybox', tag: '1' };
      issuer.requests.length = 0;
      await client.resolve(ref);
      assert.equal(issuer.requests.length, 1);
      clock += 50_000;
      await client.resolve(ref);
      assert.equal(issuer.requests.length, 1, 'reused 50 s later');
      clock += 10_000;
      await client.resolve(ref);
      assert.equal(issuer.requests.length, 2, 'fetched again 60 s later');
    } finally {
      await client.close();
    }
  });

  test('concurrent requests on one scope share one token fetch', async () => {
    const issuer = reg.issuer!;
    issuer.requests.length = 0;
    const client = clientFor(reg);
    try {
      const ref = { registry: reg.host, repository: 'tok/busybox', tag: '1' };
      // The first call learns the challenge; then many calls in parallel on a fresh scope.
      await client.resolve(ref);
      issuer.requests.length = 0;
      const other = await pushImage(reg, 'tok/other:1');
      issuer.requests.length = 0;
      const results = await Promise.all(
        Array.from({ length: 6 }, () => client.resolve({ registry: reg.host, repository: 'tok/other', tag: '1' })),
      );
      assert.ok(results.every((d) => d.digest === other));
      assert.equal(issuer.requests.length, 1);
    } finally {
      await client.close();
    }
  });
});

describe('token expiry and a 403 saying the token is bad', () => {
  let reg: RunningRegistry;
  let proxy: FaultProxy;
  let digest: string;
  before(async () => {
    reg = await startRegistry({ auth: 'token', users: { tester: 'secret' }, issuer: { expiresIn: 1 } });
    digest = await pushImage(reg, 'tok/busybox:1');
    proxy = await startFaultProxy(reg.url);
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  test('an expired token is fetched again (expires_in honoured)', async () => {
    const issuer = reg.issuer!;
    issuer.requests.length = 0;
    const client = clientFor(reg);
    try {
      const ref = { registry: reg.host, repository: 'tok/busybox', tag: '1' };
      await client.resolve(ref);
      await client.resolve(ref);
      assert.equal(issuer.requests.length, 1, 'reused while fresh');
      await sleep(1100);
      await client.resolve(ref);
      assert.equal(issuer.requests.length, 2, 'fetched again once expired');
    } finally {
      await client.close();
    }
  });

  test('a 403 "token expired" gets one retry with a fresh token; a plain 403 does not', async () => {
    const issuer = reg.issuer!;
    const client = clientFor(reg, { credentials: { [proxy.host]: { username: 'tester', password: 'secret' } } });
    try {
      const ref = { registry: proxy.host, repository: 'tok/busybox', tag: '1' };
      await client.resolve(ref);
      issuer.requests.length = 0;
      proxy.clear();
      const expired = JSON.stringify({ errors: [{ code: 'DENIED', message: 'token expired' }] });
      proxy.add({ path: '/manifests/', fault: { kind: 'status', status: 403, body: expired }, times: 1 });
      assert.equal((await client.fetchManifest(ref)).digest, digest);
      assert.equal(issuer.requests.length, 1, 'a fresh token');
      const sent = proxy.requests.map((r) => r.authorization);
      assert.equal(sent.length, 2);
      assert.notEqual(sent[0], sent[1], 'the retry carries the new token');

      const denied = JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] });
      proxy.clear();
      proxy.add({ path: '/manifests/', fault: { kind: 'status', status: 403, body: denied } });
      await assert.rejects(client.fetchManifest(ref), (err: unknown) => {
        assertUnauthorized(err, proxy.host);
        assert.match((err as Error).message, /DENIED: requested access to the resource is denied/);
        return true;
      });
      assert.equal(proxy.requests.length, 1, 'no retry for a real denial');
    } finally {
      await client.close();
    }
  });
});
