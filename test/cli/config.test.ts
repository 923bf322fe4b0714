/** The user config file (VMIMG_CONFIG): mirrors tried for pulls, and a malformed file named in one line. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit, jsonLines } from './run.js';

let registry: RunningRegistry;
let mirror: FaultProxy;
let dir: string;

before(async () => {
  registry = await startRegistry();
  const multi = await buildMultiArchLayout('cfg');
  await pushLayout(multi.ref, registry.host, 'busybox:multi', { all: true });
  mirror = await startFaultProxy(registry.url); // a loopback "mirror" that serves the registry's content
  dir = await tmpDir('vmimg-config-');
});

after(async () => {
  await mirror?.stop();
  await registry?.stop();
});

describe('config file', () => {
  it('pulls through a configured mirror when the origin is unreachable and fallback is off', async () => {
    const config = join(dir, 'config.json');
    const origin = '127.0.0.1:9'; // discard port: nothing listens
    await writeFile(config, JSON.stringify({ mirrors: { [origin]: [{ url: mirror.url, resolve: true }] }, originFallback: false }));
    const env = { VMIMG_CONFIG: config };
    const r = await expectExit(0, ['--cache-dir', join(dir, 'cache'), 'pull', `${origin}/busybox:multi`, '--arch', 'arm64', '--json', '-q'], { env });
    assert.equal(JSON.parse(r.stdout).platform.startsWith('linux/arm64'), true);
    assert.ok(mirror.requests.some((q) => q.path.includes('/manifests/multi')), 'the tag was resolved on the mirror');
  });

  it('names a malformed config file in one line and exits 2', async () => {
    const config = join(dir, 'bad.json');
    await writeFile(config, '{"mirrors": {"docker.io": "not-a-list"}}');
    const r = await expectExit(2, ['--cache-dir', join(dir, 'cache'), 'pull', 'busybox', '-q'], { env: { VMIMG_CONFIG: config } });
    assert.match(r.stderr, /config file .*bad\.json: "mirrors"\."docker\.io" must be a list/);
  });

  describe('"network" settings (retry budget, visible waits)', () => {
    const pullVia = (config: string, cache: string, extra: string[] = []) =>
      ['--cache-dir', join(dir, cache), 'pull', `${mirror.host}/busybox:multi`, '--arch', 'arm64', ...extra];
    const blobs = /\/blobs\/sha256:/;

    it('each retry wait is a log line when piped and a JSON event with --json', async () => {
      const config = join(dir, 'net.json');
      await writeFile(config, JSON.stringify({ network: { retryAttempts: 3, retryBudgetSeconds: 30 } }));
      mirror.clear();
      mirror.add({ method: 'GET', path: blobs, fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } }, times: 1 });
      const r = await expectExit(0, pullVia(config, 'net-log'), { env: { VMIMG_CONFIG: config } });
      assert.match(r.stderr, /^(layer \d+\/\d+|blob sha256:[0-9a-f]+ in \S+): retrying in 1 s: HTTP 429 from 127\.0\.0\.1:\d+$/m);
      mirror.clear();
      mirror.add({ method: 'GET', path: blobs, fault: { kind: 'status', status: 503, headers: { 'retry-after': '1' } }, times: 1 });
      const j = await expectExit(0, pullVia(config, 'net-json', ['--json']), { env: { VMIMG_CONFIG: config } });
      const events = jsonLines(j.stderr) as { progress?: { type: string; message: string; delaySeconds: number } }[];
      const retry = events.find((e) => e.progress?.type === 'retry')?.progress;
      assert.match(retry?.message ?? '', /^retrying in 1 s: HTTP 503 from 127\.0\.0\.1:\d+$/);
      assert.equal(retry?.delaySeconds, 1);
    });

    it('a Retry-After beyond retryBudgetSeconds fails at once with the time asked for', async () => {
      const config = join(dir, 'net-small.json');
      await writeFile(config, JSON.stringify({ network: { retryBudgetSeconds: 5 } }));
      mirror.clear();
      mirror.add({ method: 'GET', path: blobs, fault: { kind: 'status', status: 429, headers: { 'retry-after': '3600' } } });
      const r = await expectExit(1, pullVia(config, 'net-small'), { env: { VMIMG_CONFIG: config } });
      assert.match(r.stderr, /HTTP 429 from 127\.0\.0\.1:\d+ with Retry-After 3600 s \(1 h\); that is more than the [\d.]+ s left of the retry budget/);
      // "at once": one request and no retry after it (no timing: a loaded host may take any time)
      assert.equal(mirror.requests.filter((q) => blobs.test(q.path)).length, 1);
    });

    it('an unknown or malformed network setting is named, exit 2', async () => {
      const config = join(dir, 'net-bad.json');
      await writeFile(config, JSON.stringify({ network: { retryBudgetSeconds: -1 } }));
      const r = await expectExit(2, pullVia(config, 'net-bad'), { env: { VMIMG_CONFIG: config } });
      assert.match(r.stderr, /net-bad\.json: "network"\."retryBudgetSeconds" must be a number of at least/);
      await writeFile(config, JSON.stringify({ network: { retryBudget: 5 } }));
      const r2 = await expectExit(2, pullVia(config, 'net-bad'), { env: { VMIMG_CONFIG: config } });
      assert.match(r2.stderr, /unknown setting "network"\."retryBudget"/);
    });
  });
});
