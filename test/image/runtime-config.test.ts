/** resolveUser: every form of an image's `User` against the image's own /etc/passwd and /etc/group. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, resolveUser, commandLine } from '../../src/index.js';

const files: Record<string, string> = {
  '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001:app:/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n',
  '/etc/group': 'root:x:0:\nstaff:x:50:app\napp:x:1001:\n',
};
const read = async (path: string, offset: number, length: number): Promise<Buffer | undefined> =>
  files[path] === undefined ? undefined : Buffer.from(files[path]!).subarray(offset, offset + length);
const none = async (): Promise<Buffer | undefined> => undefined;

describe('resolveUser', () => {
  const cases: [string, { uid: number; gid: number }][] = [
    ['', { uid: 0, gid: 0 }],
    ['app', { uid: 1000, gid: 1001 }],
    ['1000', { uid: 1000, gid: 1001 }],
    ['4242', { uid: 4242, gid: 0 }],
    ['app:staff', { uid: 1000, gid: 50 }],
    ['app:7', { uid: 1000, gid: 7 }],
    ['33:50', { uid: 33, gid: 50 }],
    ['4242:4343', { uid: 4242, gid: 4343 }],
    ['web:', { uid: 33, gid: 33 }],
  ];
  for (const [user, want] of cases) {
    it(`"${user}" → ${want.uid}:${want.gid}`, async () => {
      assert.deepEqual(await resolveUser(user, read), want);
    });
  }

  it('numeric users need no /etc/passwd', async () => {
    assert.deepEqual(await resolveUser('12:34', none), { uid: 12, gid: 34 });
  });

  for (const [user, missing] of [
    ['nosuch', 'nosuch'],
    ['app:nogroup', 'nogroup'],
    ['nosuch:0', 'nosuch'],
  ] as const) {
    it(`"${user}" fails with ERR_UNKNOWN_USER naming ${missing}`, async () => {
      await assert.rejects(resolveUser(user, read), (err: { code: string; message: string }) => {
        assert.equal(err.code, ErrorCode.UNKNOWN_USER);
        assert.match(err.message, new RegExp(missing));
        return true;
      });
    });
  }

  it('a name with no /etc/passwd in the image is unknown', async () => {
    await assert.rejects(resolveUser('app', none), { code: ErrorCode.UNKNOWN_USER });
  });
});

describe('commandLine', () => {
  it('joins entrypoint and cmd, an override replacing cmd', () => {
    const config = { entrypoint: ['/bin/sh', '-c'], cmd: ['echo hi'] };
    assert.deepEqual(commandLine(config), ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(commandLine(config, ['exit 3']), ['/bin/sh', '-c', 'exit 3']);
    assert.deepEqual(commandLine({ entrypoint: [], cmd: ['/bin/true'] }), ['/bin/true']);
  });
});
