/** The user config file (VMIMG_CONFIG): mirrors tried for pulls, and a malformed file named in one line. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit } from './run.js';

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
});
