// The credential chain: explicit → VMIMG_REGISTRY_AUTH → Docker config (credHelpers, auths, credsStore) → anonymous.
// Docker config lives in a temp DOCKER_CONFIG; credential helpers are real scripts on a temp PATH.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { credentialChain } from '../../src/registry/index.js';
import { tmpDir } from '../helpers/tools.js';

let dir: string;
let binDir: string;
let configDir: string;
let helperLog: string;

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A docker-credential-NAME script answering from a fixed table, logging the server URLs it was asked for. */
function writeHelper(name: string, table: Record<string, { Username: string; Secret: string }>): void {
  const cases = Object.entries(table)
    .map(([url, answer]) => `  '${url}') echo '${JSON.stringify({ ServerURL: url, ...answer })}' ;;`)
    .join('\n');
  const script = `#!/bin/sh
[ "$1" = get ] || exit 2
read -r url
echo "${name} $url" >> '${helperLog}'
case "$url" in
${cases}
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
  const file = join(binDir, `docker-credential-${name}`);
  writeFileSync(file, script);
  chmodSync(file, 0o755);
}

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, DOCKER_CONFIG: configDir, HOME: dir, ...extra };
}

describe('credential chain', () => {
  before(async () => {
    dir = await tmpDir('vmimg-creds-');
    binDir = join(dir, 'bin');
    configDir = join(dir, 'docker');
    helperLog = join(dir, 'helper.log');
    mkdirSync(binDir);
    mkdirSync(configDir);
    writeFileSync(helperLog, '');
    writeHelper('test', {
      'helped.example': { Username: 'helper-user', Secret: 'helper-pass' },
      'https://index.docker.io/v1/': { Username: 'hub-user', Secret: 'hub-pass' },
      'tokened.example': { Username: '<token>', Secret: 'refresh-xyz' },
    });
    writeHelper('broken', {});
    writeFileSync(
      join(configDir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://plain.example/v1/': { auth: b64('plain-user:pa:ss') },
          'identity.example': { identitytoken: 'id-token-1' },
          'empty.example': {},
        },
        credHelpers: { 'helped.example': 'test', 'tokened.example': 'test', 'gone.example': 'does-not-exist' },
        credsStore: 'test',
      }),
    );
  });

  test('auths: base64 user:password (colon in the password), keyed by URL', async () => {
    const cred = await credentialChain({ env: env() })('plain.example');
    assert.deepEqual(cred, { source: 'docker-config', username: 'plain-user', password: 'pa:ss' });
  });

  test('auths: identitytoken', async () => {
    assert.deepEqual(await credentialChain({ env: env() })('identity.example'), { source: 'docker-config', identityToken: 'id-token-1' });
  });

  test('credHelpers: runs docker-credential-NAME get with the host on stdin', async () => {
    assert.deepEqual(await credentialChain({ env: env() })('helped.example'), {
      source: 'helper:test',
      username: 'helper-user',
      password: 'helper-pass',
    });
    assert.match(readFileSync(helperLog, 'utf8'), /^test helped\.example$/m);
  });

  test('a helper answering <token> gives an identity token', async () => {
    assert.deepEqual(await credentialChain({ env: env() })('tokened.example'), { source: 'helper:test', identityToken: 'refresh-xyz' });
  });

  test('credsStore for Docker Hub asks with https://index.docker.io/v1/', async () => {
    for (const name of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      const cred = await credentialChain({ env: env() })(name);
      assert.deepEqual(cred, { source: 'helper:test', username: 'hub-user', password: 'hub-pass' }, name);
    }
    assert.match(readFileSync(helperLog, 'utf8'), /^test https:\/\/index\.docker\.io\/v1\/$/m);
  });

  test('"credentials not found" from the store means anonymous', async () => {
    assert.equal(await credentialChain({ env: env() })('nobody.example'), undefined);
    assert.equal(await credentialChain({ env: env() })('empty.example'), undefined);
  });

  test('a missing helper is ERR_UNAUTHORIZED naming it', async () => {
    await assert.rejects(credentialChain({ env: env() })('gone.example'), (err: Error & { code?: string; hint?: string }) => {
      assert.equal(err.code, 'ERR_UNAUTHORIZED');
      assert.match(err.message, /docker-credential-does-not-exist/);
      assert.match(err.hint ?? '', /PATH/);
      return true;
    });
  });

  test('no Docker config at all means anonymous', async () => {
    assert.equal(await credentialChain({ env: { HOME: dir, DOCKER_CONFIG: join(dir, 'none') } })('plain.example'), undefined);
  });

  test('first hit wins: explicit over env over Docker config', async () => {
    const envAuth = JSON.stringify({ 'plain.example': { username: 'env-user', password: 'env-pass' }, 'tok.example': { token: 't0k' } });
    const lookup = credentialChain({ env: env({ VMIMG_REGISTRY_AUTH: envAuth }) });
    assert.deepEqual(await lookup('plain.example'), { source: 'env', username: 'env-user', password: 'env-pass' });
    assert.deepEqual(await lookup('tok.example'), { source: 'env', identityToken: 't0k' });
    const explicit = credentialChain({
      env: env({ VMIMG_REGISTRY_AUTH: envAuth }),
      credentials: { 'plain.example': { username: 'cli-user', password: 'cli-pass' } },
    });
    assert.deepEqual(await explicit('plain.example'), { source: 'option', username: 'cli-user', password: 'cli-pass' });
    assert.equal((await explicit('helped.example'))?.source, 'helper:test', 'others fall through to Docker config');
  });

  const envKeyCases: [string, Record<string, unknown>, Record<string, string>][] = [
    ['token is a refresh token (compatibility)', { token: 't0k' }, { identityToken: 't0k' }],
    ['identitytoken is a refresh token', { identitytoken: 'refresh' }, { identityToken: 'refresh' }],
    ['identityToken (camelCase)', { identityToken: 'refresh' }, { identityToken: 'refresh' }],
    ['registrytoken is a bearer sent as-is', { registrytoken: 'bearer' }, { registryToken: 'bearer' }],
    ['registryToken (camelCase)', { registryToken: 'bearer' }, { registryToken: 'bearer' }],
    ['username with identitytoken', { username: '<token>', identitytoken: 'r' }, { username: '<token>', identityToken: 'r' }],
    ['unknown keys are ignored', { username: 'u', password: 'p', auth: 'eA==', email: 'x' }, { username: 'u', password: 'p' }],
  ];
  for (const [name, entry, expected] of envKeyCases) {
    test(`VMIMG_REGISTRY_AUTH keys: ${name}`, async () => {
      const lookup = credentialChain({ env: env({ VMIMG_REGISTRY_AUTH: JSON.stringify({ 'k.example': entry }) }) });
      assert.deepEqual(await lookup('k.example'), { source: 'env', ...expected });
    });
  }

  test('VMIMG_REGISTRY_AUTH: a non-string token or an entry naming no credential is ERR_INVALID_ARGUMENT without echoing it', async () => {
    for (const entry of [{ registrytoken: { secret: 'hunter2' } }, { email: 'hunter2' }]) {
      const lookup = credentialChain({ env: env({ VMIMG_REGISTRY_AUTH: JSON.stringify({ 'k.example': entry }) }) });
      await assert.rejects(lookup('k.example'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_INVALID_ARGUMENT');
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      });
    }
  });

  test('a malformed VMIMG_REGISTRY_AUTH is ERR_INVALID_ARGUMENT without echoing it', async () => {
    const lookup = credentialChain({ env: env({ VMIMG_REGISTRY_AUTH: '{"x": hunter2' }) });
    await assert.rejects(lookup('x'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_INVALID_ARGUMENT');
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });

  describe('a helper whose child holds the pipes (S08)', () => {
    /** A helper script body; the config maps `<name>.example` to it. */
    function writeScript(name: string, body: string): NodeJS.ProcessEnv {
      const file = join(binDir, `docker-credential-${name}`);
      writeFileSync(file, `#!/bin/sh\n${body}\n`);
      chmodSync(file, 0o755);
      const cfg = join(dir, `docker-${name}`);
      mkdirSync(cfg, { recursive: true });
      writeFileSync(join(cfg, 'config.json'), JSON.stringify({ credHelpers: { [`${name}.example`]: name } }));
      return env({ DOCKER_CONFIG: cfg });
    }
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };

    test('is killed with its whole process group at the deadline: ERR_UNAUTHORIZED naming the helper', async () => {
      const pidFile = join(dir, 'hang-child.pid');
      const e = writeScript('hangchild', `sleep 60 &\necho $! > '${pidFile}'\nwait\necho '{"Username":"u","Secret":"late"}'`);
      const started = Date.now();
      await assert.rejects(credentialChain({ env: e, helperTimeoutMs: 500 })('hangchild.example'), (err: Error & { code?: string; hint?: string }) => {
        assert.equal(err.code, 'ERR_UNAUTHORIZED');
        assert.match(err.message, /docker-credential-hangchild .*no answer within 0\.5 s/);
        assert.match(err.hint ?? '', /credentialHelperTimeoutSeconds/);
        return true;
      });
      assert.ok(Date.now() - started < 20_000, 'not held by the child (which sleeps 60 s)');
      const child = Number(readFileSync(pidFile, 'utf8'));
      for (let i = 0; i < 50 && alive(child); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(child), false, 'the helper\'s child was killed too');
    });

    test('that answered and exited is not waited for', async () => {
      const e = writeScript('leavechild', `echo '{"Username":"u","Secret":"s"}'\nsleep 60 &\nexit 0`);
      const started = Date.now();
      assert.deepEqual(await credentialChain({ env: e, helperTimeoutMs: 30_000 })('leavechild.example'), { source: 'helper:leavechild', username: 'u', password: 's' });
      assert.ok(Date.now() - started < 20_000, 'answered long before the 60 s child or the 30 s limit');
    });
  });
});
