/**
 * Progress output as the user sees it: cli-progress bars when stderr is a terminal (driven through a
 * real pseudo-terminal with util-linux `script`; load from a tar, pull from a real registry through a
 * throttling proxy), plain log lines when piped, JSON lines with --json,
 * nothing with --quiet, and no colours under NO_COLOR.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { startRegistry } from '../helpers/registry.js';
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

/**
 * A loopback proxy that hands out blob bodies 32 KiB at a time with a pause between slices, so a
 * download of a few MiB lasts seconds however fast the machine: long enough for the bars to show
 * a rate and an ETA (the assertions only ever need "at least this slow").
 */
async function startThrottle(upstream: string): Promise<{ host: string; stop(): Promise<void> }> {
  const target = new URL(upstream);
  const server = createServer((req, res) => {
    const headers = { ...req.headers, host: target.host };
    const up = request({ hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (req.method !== 'GET' || !/\/blobs\/sha256:/.test(req.url ?? '')) return void upRes.pipe(res);
      upRes.on('data', (chunk: Buffer) => {
        upRes.pause();
        void (async () => {
          for (let i = 0; i < chunk.length && !res.destroyed; i += 32 * 1024) {
            res.write(chunk.subarray(i, i + 32 * 1024));
            await sleep(10);
          }
          upRes.resume();
        })();
      });
      upRes.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('progress output', () => {
  it('shows bytes, a rate and an ETA while pulling a layer from a registry', async () => {
    const registry = await startRegistry();
    const throttle = await startThrottle(registry.url);
    try {
      const built = await buildBusyboxLayout({
        arch: 'amd64',
        tag: 'progress-big',
        extraLayers: [{ populate: (dir) => writeFileSync(join(dir, 'big.bin'), randomBytes(4 << 20)) }],
      });
      await pushLayout(built.ref, registry.host, 'big:1');
      const cache = await tmpDir('vmimg-cli-tty-pull-');
      const { code, screen } = await inTerminal(['--cache-dir', cache, 'pull', `${throttle.host}/big:1`, '--arch', 'amd64', '--concurrency', '1']);
      assert.equal(code, 0, screen);
      assert.match(screen, BAR_CHARS, 'bars drawn');
      assert.match(screen, /\d+(\.\d)? (B|KiB|MiB)\/4\.\d MiB/, 'bytes done of the big layer');
      assert.match(screen, /\d+(\.\d)? (B|KiB|MiB)\/s/, 'a download rate');
      assert.match(screen, /ETA \d+s/, 'an ETA');
      assert.match(screen, /^platform: +linux\/amd64/m);
    } finally {
      await throttle.stop();
      await registry.stop();
    }
  });

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
