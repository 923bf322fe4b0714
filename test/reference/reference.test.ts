import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiHost,
  familiarName,
  formatReference,
  isLoopbackHost,
  parseReference,
} from '../../src/reference/index.js';
import { isVmimgError } from '../../src/errors.js';

const D = `sha256:${'a'.repeat(64)}`;
const D512 = `sha512:${'b'.repeat(128)}`;

// [input, registry, repository, tag, digest, canonical, familiar]
type Valid = [string, string, string, string | undefined, string | undefined, string, string];
const valid: Valid[] = [
  ['alpine', 'docker.io', 'library/alpine', 'latest', undefined, 'docker.io/library/alpine:latest', 'alpine:latest'],
  ['alpine:3.20', 'docker.io', 'library/alpine', '3.20', undefined, 'docker.io/library/alpine:3.20', 'alpine:3.20'],
  ['library/alpine', 'docker.io', 'library/alpine', 'latest', undefined, 'docker.io/library/alpine:latest', 'alpine:latest'],
  ['docker.io/alpine', 'docker.io', 'library/alpine', 'latest', undefined, 'docker.io/library/alpine:latest', 'alpine:latest'],
  ['index.docker.io/alpine', 'docker.io', 'library/alpine', 'latest', undefined, 'docker.io/library/alpine:latest', 'alpine:latest'],
  ['index.docker.io/user/app:v1', 'docker.io', 'user/app', 'v1', undefined, 'docker.io/user/app:v1', 'user/app:v1'],
  ['docker.io/library/busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined, 'docker.io/library/busybox:1.36', 'busybox:1.36'],
  ['user/app', 'docker.io', 'user/app', 'latest', undefined, 'docker.io/user/app:latest', 'user/app:latest'],
  ['library/a/b', 'docker.io', 'library/a/b', 'latest', undefined, 'docker.io/library/a/b:latest', 'library/a/b:latest'],
  ['localhost/x', 'localhost', 'x', 'latest', undefined, 'localhost/x:latest', 'localhost/x:latest'],
  ['localhost:5000/x', 'localhost:5000', 'x', 'latest', undefined, 'localhost:5000/x:latest', 'localhost:5000/x:latest'],
  ['localhost:5000/x:t', 'localhost:5000', 'x', 't', undefined, 'localhost:5000/x:t', 'localhost:5000/x:t'],
  ['127.0.0.1:5000/ns/x:1', '127.0.0.1:5000', 'ns/x', '1', undefined, '127.0.0.1:5000/ns/x:1', '127.0.0.1:5000/ns/x:1'],
  ['[::1]:5000/x', '[::1]:5000', 'x', 'latest', undefined, '[::1]:5000/x:latest', '[::1]:5000/x:latest'],
  ['[::1]/x', '[::1]', 'x', 'latest', undefined, '[::1]/x:latest', '[::1]/x:latest'],
  ['[2001:db8::1]:443/a/b:c', '[2001:db8::1]:443', 'a/b', 'c', undefined, '[2001:db8::1]:443/a/b:c', '[2001:db8::1]:443/a/b:c'],
  ['host.example/a/b/c:tag', 'host.example', 'a/b/c', 'tag', undefined, 'host.example/a/b/c:tag', 'host.example/a/b/c:tag'],
  ['ghcr.io/org/app:1.2.3', 'ghcr.io', 'org/app', '1.2.3', undefined, 'ghcr.io/org/app:1.2.3', 'ghcr.io/org/app:1.2.3'],
  ['Registry.Example.COM/x', 'Registry.Example.COM', 'x', 'latest', undefined, 'Registry.Example.COM/x:latest', 'Registry.Example.COM/x:latest'],
  ['my-host:1/x', 'my-host:1', 'x', 'latest', undefined, 'my-host:1/x:latest', 'my-host:1/x:latest'],
  [`alpine@${D}`, 'docker.io', 'library/alpine', undefined, D, `docker.io/library/alpine@${D}`, `alpine@${D}`],
  [`alpine:3@${D}`, 'docker.io', 'library/alpine', '3', D, `docker.io/library/alpine:3@${D}`, `alpine:3@${D}`],
  [`localhost:5000/x@${D512}`, 'localhost:5000', 'x', undefined, D512, `localhost:5000/x@${D512}`, `localhost:5000/x@${D512}`],
  ['ns/a_b.c-d__e---f:T_a-g.1', 'docker.io', 'ns/a_b.c-d__e---f', 'T_a-g.1', undefined, 'docker.io/ns/a_b.c-d__e---f:T_a-g.1', 'ns/a_b.c-d__e---f:T_a-g.1'],
  ['x:_tag', 'docker.io', 'library/x', '_tag', undefined, 'docker.io/library/x:_tag', 'x:_tag'],
  [`x:${'t'.repeat(128)}`, 'docker.io', 'library/x', 't'.repeat(128), undefined, `docker.io/library/x:${'t'.repeat(128)}`, `x:${'t'.repeat(128)}`],
  ['foo/bar', 'docker.io', 'foo/bar', 'latest', undefined, 'docker.io/foo/bar:latest', 'foo/bar:latest'],
  ['0/1', 'docker.io', '0/1', 'latest', undefined, 'docker.io/0/1:latest', '0/1:latest'],
];

describe('parseReference: valid references', () => {
  for (const [input, registry, repository, tag, digest, canonical, familiar] of valid) {
    it(input.length > 60 ? `${input.slice(0, 57)}...` : input, () => {
      const ref = parseReference(input);
      assert.equal(ref.registry, registry);
      assert.equal(ref.repository, repository);
      assert.equal(ref.tag, tag);
      assert.equal(ref.digest, digest);
      assert.equal(formatReference(ref), canonical);
      assert.equal(familiarName(ref), familiar);
      // The canonical form parses back to the same reference.
      assert.deepEqual(parseReference(canonical), ref);
    });
  }
});

// [input, substring the message must contain]
const invalidCases: [string, string][] = [
  ['', 'empty'],
  ['Alpine', 'must be lowercase'],
  ['user/App', 'must be lowercase'],
  ['ghcr.io/Org/app', 'must be lowercase'],
  ['alpine:', 'bad tag ""'],
  ['alpine:-x', 'bad tag "-x"'],
  ['alpine:.x', 'bad tag ".x"'],
  ['alpine:a+b', 'bad tag "a+b"'],
  [`alpine:${'t'.repeat(129)}`, 'bad tag'],
  ['alpine@sha256:abc', 'invalid digest'],
  [`alpine@sha256:${'A'.repeat(64)}`, 'invalid digest'],
  [`alpine@md5:${'a'.repeat(32)}`, 'invalid digest'],
  ['alpine@', 'invalid digest'],
  [':tag', 'repository name is empty'],
  [`@${D}`, 'repository name is empty'],
  ['/alpine', 'empty path component'],
  ['alpine/', 'empty path component'],
  ['a//b', 'empty path component'],
  ['-alpine', 'bad repository component "-alpine"'],
  ['alpine-', 'bad repository component "alpine-"'],
  ['a..b', 'bad repository component "a..b"'],
  ['a___b', 'bad repository component "a___b"'],
  ['a b', 'bad repository component "a b"'],
  ['localhost:5000/', 'repository path is empty'],
  ['-host.io/x', 'bad registry "-host.io"'],
  ['a_b.c/g', 'bad registry "a_b.c"'],
  ['host.io:port/x', 'bad registry "host.io:port"'],
  ['host.io:99999/x', 'port "99999"'],
  ['[::1/x', 'bad registry "[::1"'],
  ['[zz::1]:5000/x', 'not a valid bracketed IPv6'],
  ['[::1]x/x', 'after the IPv6 address'],
  [' alpine', 'whitespace'],
  ['a'.repeat(64), 'looks like an image ID'],
  [`example.com/${'a'.repeat(250)}`, 'at most 255'],
  [`${'a'.repeat(250)}`, 'at most 255'],
];

describe('parseReference: invalid references', () => {
  for (const [input, message] of invalidCases) {
    it(`${JSON.stringify(input.length > 50 ? `${input.slice(0, 47)}...` : input)} -> ${message}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => {
          assert.ok(isVmimgError(err, 'ERR_INVALID_REFERENCE'), `wrong error: ${String(err)}`);
          assert.ok(err.message.includes(message), `message "${err.message}" lacks "${message}"`);
          return true;
        },
      );
    });
  }
});

describe('apiHost', () => {
  const cases: [string, string][] = [
    ['docker.io', 'registry-1.docker.io'],
    ['ghcr.io', 'ghcr.io'],
    ['localhost:5000', 'localhost:5000'],
    ['[::1]:5000', '[::1]:5000'],
  ];
  for (const [input, expected] of cases) it(input, () => assert.equal(apiHost(input), expected));
});

describe('isLoopbackHost', () => {
  const cases: [string, boolean][] = [
    ['localhost', true],
    ['localhost:5000', true],
    ['LOCALHOST:5000', true],
    ['127.0.0.1', true],
    ['127.0.0.1:5000', true],
    ['127.255.1.2:80', true],
    ['[::1]:5000', true],
    ['[::1]', true],
    ['::1', true],
    ['[0:0:0:0:0:0:0:1]:5000', true],
    ['[::ffff:127.0.0.1]:5000', true],
    ['128.0.0.1:5000', false],
    ['10.0.0.1', false],
    ['[::2]:5000', false],
    ['docker.io', false],
    ['localhost.example.com', false],
    ['127.0.0.1.example.com', false],
  ];
  for (const [input, expected] of cases) it(`${input} -> ${expected}`, () => assert.equal(isLoopbackHost(input), expected));
});
