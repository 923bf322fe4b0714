/**
 * Progress output as the user sees it: cli-progress bars when stderr is a terminal (driven through a
 * real pseudo-terminal with util-linux `script`), plain log lines when piped, JSON lines with --json,
 * nothing with --quiet, and no colours under NO_COLOR.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTool, tmpDir } from '../helpers/tools.js';
import { BIN, MULTIARCH_TAR, expectExit, jsonLines } from './run.js';

const ESC = '\u001b[';
const BAR_CHARS = /[\u2588\u2591]{4,}/; // cli-progress shades_classic: full and light shade blocks

/** Runs vmimg under a pseudo-terminal; resolves with everything the terminal showed. */
function inTerminal(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; screen: string }> {
  const script = requireTool('script', 'bsdutils');
  const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, BIN, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(script, ['-qfec', command, '/dev/null'], {
      cwd: REPO_ROOT,
      env: { ...process.env, NO_COLOR: undefined, TERM: 'xterm', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen: Buffer.concat(out).toString('utf8') }));
  });
}

describe('progress output', () => {
  it('draws a bar per layer and a total on a terminal, in colour', async () => {
    const cache = await tmpDir('vmimg-cli-tty-');
    const { code, screen } = await inTerminal(['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'amd64']);
    assert.equal(code, 0, screen);
    assert.match(screen, BAR_CHARS, 'bars drawn');
    for (const i of [1, 2, 3]) assert.match(screen, new RegExp(`${i}/3 [0-9a-f]{8} `), `bar for layer ${i}/3`);
    assert.match(screen, /total .*3\/3 layers/);
    assert.ok(screen.includes(`${ESC}32mdone`), 'states are coloured');
    assert.match(screen, /^platform: +linux\/amd64/m, 'the result follows the bars');
  });

  it('uses no colours under NO_COLOR, and none of it with --quiet', async () => {
    const cache = await tmpDir('vmimg-cli-tty-');
    const plain = await inTerminal(['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'arm64'], { NO_COLOR: '1' });
    assert.equal(plain.code, 0, plain.screen);
    assert.match(plain.screen, BAR_CHARS);
    assert.doesNotMatch(plain.screen, /\u001b\[3\dm/, 'no SGR colour codes');
    const quiet = await inTerminal(['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'arm64', '--quiet']);
    assert.equal(quiet.code, 0);
    assert.doesNotMatch(quiet.screen, BAR_CHARS);
  });

  it('writes one plain line per layer state change when stderr is not a terminal', async () => {
    const cache = await tmpDir('vmimg-cli-pipe-');
    const r = await expectExit(0, ['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'amd64']);
    assert.doesNotMatch(r.stderr, BAR_CHARS);
    assert.ok(!r.stderr.includes(ESC), 'no escape sequences');
    for (const i of [1, 2, 3]) {
      assert.match(r.stderr, new RegExp(`^layer ${i}/3 [0-9a-f]{12}: extracting`, 'm'), 'the conversion phase shows');
      assert.match(r.stderr, new RegExp(`^layer ${i}/3 [0-9a-f]{12}: done`, 'm'));
    }
    const lines = r.stderr.trim().split('\n');
    assert.equal(new Set(lines).size, lines.length, 'a line per change, not per chunk');
    assert.match(r.stderr, /^image: done$/m);
    const again = await expectExit(0, ['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'amd64']);
    assert.match(again.stderr, /^layer 1\/3 [0-9a-f]{12}: cached/m);
  });

  it('turns progress into JSON lines on stderr with --json', async () => {
    const cache = await tmpDir('vmimg-cli-json-');
    const r = await expectExit(0, ['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'arm64', '--json']);
    JSON.parse(r.stdout);
    const events = jsonLines(r.stderr) as { progress: { type: string; state: string; index?: number; count?: number } }[];
    const layerStates = events.filter((e) => e.progress.type === 'layer').map((e) => `${e.progress.index}:${e.progress.state}`);
    for (const i of [0, 1, 2]) {
      assert.ok(layerStates.includes(`${i}:extracting`) && layerStates.includes(`${i}:done`), `layer ${i}: ${layerStates.join(' ')}`);
    }
    assert.equal(events.at(-1)?.progress.type, 'image');
    assert.equal(events.at(-1)?.progress.state, 'done');
  });
});
