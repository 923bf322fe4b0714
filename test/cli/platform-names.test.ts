/**
 * One name, one image per platform (issue 11 item 3), through the CLI and the real registry behind the
 * fault proxy (which counts requests): pulling a second platform keeps the first named; reading
 * commands use the cached image for the asked (or host) platform without contacting the registry, and
 * say so when they must pull; `rm --arch` removes one platform; `load` prints the name just loaded;
 * a refs.json written by older vmimg (no per-platform map) keeps its image when another platform comes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMultiArchLayout, pushLayout, toDockerArchive } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit } from './run.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let ref: string;
let amd64Layout: string;
const HOST_ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
const OTHER_ARCH = HOST_ARCH === 'amd64' ? 'arm64' : 'amd64';

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  const multi = await buildMultiArchLayout('platformnames');
  await pushLayout(multi.ref, registry.host, 'busybox:multi', { all: true });
  ref = `${proxy.host}/busybox:multi`;
  amd64Layout = multi.images.amd64.ref;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

interface Row {
  id: string;
  names: string[];
  platform: string;
}

async function images(cache: string): Promise<Row[]> {
  return JSON.parse((await expectExit(0, ['--cache-dir', cache, 'images', '--json'])).stdout) as Row[];
}

/** `cat REF /etc/arch` with extra args; returns the arch printed and how many registry requests it made. */
async function arch(cache: string, ...extra: string[]): Promise<{ arch: string; requests: number; stderr: string }> {
  const before = proxy.requests.length;
  const r = await expectExit(0, ['--cache-dir', cache, 'cat', ref, '/etc/arch', ...extra]);
  return { arch: r.stdout.trim(), requests: proxy.requests.length - before, stderr: r.stderr };
}

describe('a name holds one image per platform', () => {
  it('keeps both platforms named and reads the asked or host one from the cache', async () => {
    const cache = await tmpDir('vmimg-platform-names-');
    await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', 'amd64', '-q']);
    await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', 'arm64', '-q']);
    const rows = await images(cache);
    assert.deepEqual(rows.map((r) => [r.platform.split('/')[1], r.names]).sort(), [['amd64', [ref]], ['arm64', [ref]]], 'no <none>');
    // no image named: the most recent one (arm64), or with --arch its name's image for that platform
    const out = join(await tmpDir('vmimg-platform-names-out-'), 'vm');
    await expectExit(0, ['--cache-dir', cache, 'export', out, '--arch', 'amd64', '-q']);
    assert.equal((await expectExit(0, ['cat', out, '/etc/arch'])).stdout, 'amd64\n');

    assert.deepEqual(await arch(cache), { arch: HOST_ARCH, requests: 0, stderr: '' }, 'the host’s platform, from the cache');
    const other = await arch(cache, '--arch', OTHER_ARCH);
    assert.deepEqual([other.arch, other.requests], [OTHER_ARCH, 0], 'the asked platform, from the cache');

    const removed = await expectExit(0, ['--cache-dir', cache, 'rm', ref, '--arch', OTHER_ARCH, '--json']);
    assert.equal(removed.stdout.trim().split('\n').length, 1, 'only that platform is removed');
    assert.deepEqual((await images(cache)).map((r) => r.names), [[ref]]);

    const pulled = await arch(cache, '--arch', OTHER_ARCH);
    assert.equal(pulled.arch, OTHER_ARCH);
    assert.ok(pulled.requests > 0, 'not cached for that platform: pulled');
    assert.match(pulled.stderr, new RegExp(`is cached for linux/${HOST_ARCH}[^,]*, not linux/${OTHER_ARCH}.*: pulling it from ${proxy.host.replace(/\./g, '\\.')}`));
    assert.deepEqual((await images(cache)).map((r) => r.names), [[ref], [ref]], 'the pull added a platform, it did not repoint the name');
    assert.equal((await arch(cache)).arch, HOST_ARCH, 'the host’s image is still what the name means by default');

    const all = await expectExit(0, ['--cache-dir', cache, 'rm', ref, '--json']);
    assert.equal(all.stdout.trim().split('\n').length, 2, 'without --arch every platform of the name goes');
    assert.deepEqual(await images(cache), []);
  });

  it('with only another platform cached, uses it and says so; a missing name is pulled with a notice', async () => {
    const cache = await tmpDir('vmimg-platform-names-');
    const first = await arch(cache);
    assert.ok(first.requests > 0);
    assert.match(first.stderr, /is not cached: pulling it from/);
    await expectExit(0, ['--cache-dir', cache, 'rm', ref]);
    await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', OTHER_ARCH, '-q']);
    const r = await arch(cache);
    assert.deepEqual([r.arch, r.requests], [OTHER_ARCH, 0]);
    assert.match(r.stderr, new RegExp(`^warning: using the cached linux/${OTHER_ARCH}\\S* image of .*pass --arch`, 'm'));
  });

  it('adds a platform to a name recorded by older vmimg (refs.json without the per-platform map)', async () => {
    const cache = await tmpDir('vmimg-platform-names-');
    await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', 'amd64', '-q']);
    const file = join(cache, 'refs.json');
    const refs = JSON.parse(await readFile(file, 'utf8')) as { refs: Record<string, { image: string; updatedAt: string; platforms?: unknown }> };
    const entry = refs.refs[ref]!;
    await writeFile(file, JSON.stringify({ version: 1, refs: { [ref]: { image: entry.image, updatedAt: entry.updatedAt } }, last: entry.image }));
    await expectExit(0, ['--cache-dir', cache, 'pull', ref, '--arch', 'arm64', '-q']);
    assert.deepEqual((await images(cache)).map((r) => r.names), [[ref], [ref]]);
    const after = JSON.parse(await readFile(file, 'utf8')) as typeof refs;
    assert.equal(typeof after.refs[ref]!.image, 'string', 'still readable by older vmimg: the most recent image');
  });
});

describe('load prints the name it just loaded', () => {
  it('two archives holding the same image each print their own name', async () => {
    const dir = await tmpDir('vmimg-platform-names-');
    const cache = await tmpDir('vmimg-platform-names-');
    const one = await toDockerArchive(amd64Layout, join(dir, 'one.tar'), 'alpha/one:1');
    const two = await toDockerArchive(amd64Layout, join(dir, 'two.tar'), 'zeta/two:2');
    const a = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'load', one, '--json', '-q'])).stdout) as { name: string; id: string };
    const b = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'load', two, '--json', '-q'])).stdout) as { name: string; id: string; names: string[] };
    assert.equal(a.id, b.id, 'the same image');
    assert.equal(a.name, 'docker.io/alpha/one:1');
    assert.equal(b.name, 'docker.io/zeta/two:2', 'not the other archive’s name (which sorts first)');
    assert.deepEqual(b.names.sort(), ['docker.io/alpha/one:1', 'docker.io/zeta/two:2']);
  });
});
