/**
 * cli/argv: arguments keep the bytes the shell passed (Node's argv replaces invalid UTF-8 with U+FFFD),
 * read from /proc/self/cmdline only when its tail is exactly our arguments.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { argvBytes } from '../../src/cli/argv.js';

const cmdline = (...args: string[]) => () => Buffer.concat(args.map((a) => Buffer.concat([Buffer.from(a, 'latin1'), Buffer.of(0)])));

describe('argvBytes', () => {
  it('decodes lossless names from the command line when Node lost bytes', () => {
    const lossy = ['cat', 'img.tar', '/data/f-\ufffd'];
    assert.deepEqual(argvBytes(lossy, cmdline('node', '--import', 'x', 'bin/vmimg', 'cat', 'img.tar', '/data/f-\xe4')), ['cat', 'img.tar', '/data/f-\udce4']);
  });

  it('keeps Node argv when nothing was lost, or when the command line does not end with the same arguments', () => {
    assert.deepEqual(argvBytes(['ls', '/é'], () => { throw new Error('not read'); }), ['ls', '/é']);
    assert.deepEqual(argvBytes(['cat', '/\ufffd'], cmdline('node', 'bin/vmimg', 'cat', '/other\xe4')), ['cat', '/\ufffd']);
    assert.deepEqual(argvBytes(['cat', '/\ufffd'], () => { throw new Error('no /proc'); }), ['cat', '/\ufffd']);
    assert.deepEqual(argvBytes(['cat', '/\ufffd'], cmdline('node', 'bin/vmimg', 'cat', '/\xef\xbf\xbd')), ['cat', '/\ufffd'], 'a real U+FFFD stays one');
  });
});
