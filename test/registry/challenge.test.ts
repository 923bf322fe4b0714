// WWW-Authenticate parsing: a table of real and tricky headers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent } from 'undici';
import { isVmimgError } from '../../src/errors.js';
import { Authorizer } from '../../src/registry/auth.js';
import { parseWWWAuthenticate, registryEndpoints, saysTokenExpired, type Challenge } from '../../src/registry/index.js';
import { Transport } from '../../src/registry/transport.js';

const cases: [string, string | string[] | undefined, Challenge[]][] = [
  ['nothing', undefined, []],
  ['empty', '', []],
  [
    'docker registry bearer',
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
    [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
  ],
  [
    'quoted value with commas (several scopes)',
    'Bearer realm="https://r/token",scope="repository:a:pull,push repository:b:pull",service="s"',
    [{ scheme: 'bearer', params: { realm: 'https://r/token', scope: 'repository:a:pull,push repository:b:pull', service: 's' } }],
  ],
  ['basic', 'Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
  [
    'case-insensitive scheme and names, values kept',
    'BEARER Realm="https://R/Token", SERVICE=Svc',
    [{ scheme: 'bearer', params: { realm: 'https://R/Token', service: 'Svc' } }],
  ],
  [
    'escaped quotes and backslashes in a quoted value',
    'Basic realm="say \\"hi\\", \\\\ok"',
    [{ scheme: 'basic', params: { realm: 'say "hi", \\ok' } }],
  ],
  [
    'two challenges in one header',
    'Basic realm="simple", Bearer realm="https://r/token",service="s"',
    [
      { scheme: 'basic', params: { realm: 'simple' } },
      { scheme: 'bearer', params: { realm: 'https://r/token', service: 's' } },
    ],
  ],
  [
    'two header lines',
    ['Negotiate', 'Bearer realm="https://r/t"'],
    [
      { scheme: 'negotiate', params: {} },
      { scheme: 'bearer', params: { realm: 'https://r/t' } },
    ],
  ],
  [
    'token68 then another challenge',
    'Negotiate abc123==, Basic realm="x"',
    [
      { scheme: 'negotiate', params: {}, token68: 'abc123==' },
      { scheme: 'basic', params: { realm: 'x' } },
    ],
  ],
  [
    'spaces around = and commas, empty quoted value',
    'Bearer  realm = "https://r/t" ,  error="invalid_token" , error_description=""',
    [{ scheme: 'bearer', params: { realm: 'https://r/t', error: 'invalid_token', error_description: '' } }],
  ],
  ['bare scheme', 'Bearer', [{ scheme: 'bearer', params: {} }]],
  ['unterminated quote takes the rest', 'Basic realm="open', [{ scheme: 'basic', params: { realm: 'open' } }]],
];

for (const [name, header, expected] of cases) {
  test(`parseWWWAuthenticate: ${name}`, () => {
    assert.deepEqual(parseWWWAuthenticate(header), expected);
  });
}

const expiredCases: [string, string | undefined, string, boolean][] = [
  ['error=invalid_token in the challenge', 'Bearer realm="r",error="invalid_token"', '', true],
  ['registry body says token expired', undefined, '{"errors":[{"code":"DENIED","message":"token expired"}]}', true],
  ['registry body says invalid token', undefined, '{"errors":[{"code":"UNAUTHORIZED","message":"invalid token"}]}', true],
  ['plain permission denied', 'Bearer realm="r",error="insufficient_scope"', '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}', false],
];

for (const [name, header, body, expected] of expiredCases) {
  test(`saysTokenExpired: ${name}`, () => {
    assert.equal(saysTokenExpired(header, body), expected);
  });
}

test('credentials are never sent to a plain-HTTP token realm from an HTTPS registry', async () => {
  const agent = new Agent();
  let asked = 0;
  const authorizer = new Authorizer({
    transport: new Transport(agent, 'test'),
    credentials: async () => {
      asked++;
      return { source: 'option', username: 'u', password: 'p' };
    },
  });
  const endpoint = registryEndpoints('registry.example', { env: {} })[0]!;
  await assert.rejects(
    authorizer.onChallenge(endpoint, 'Bearer realm="http://auth.example/token",service="s"', 'repository:a:pull', undefined),
    (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_UNAUTHORIZED'));
      assert.match(err.message, /plain HTTP/);
      return true;
    },
  );
  assert.equal(asked, 1);
  await agent.close();
});
