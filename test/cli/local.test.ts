/**
 * The vmimg command end to end on the shipped sample tars (images/): load, ls, cat, resolve, inspect,
 * export, images, rm, prune, validate, and each usage / not-found / platform error with its exit code.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from '../helpers/tools.js';
import type { ListedEntry as LsEntry } from '../../src/cli/walk.js';
import { AMD64_TAR, MULTIARCH_TAR, expectExit, jsonLines, vmimg } from './run.js';


let cache: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

before(async () => {
  cache = await tmpDir('vmimg-cli-');
});

describe('vmimg load / cat / ls / resolve', () => {
  it('loads each architecture of the multi-arch OCI archive and prints it as JSON', async () => {
    for (const [arch, platform] of [
      ['amd64', 'linux/amd64'],
      ['arm64', 'linux/arm64'],
    ] as const) {
      const r = await expectExit(0, c('load', MULTIARCH_TAR, '--arch', arch, '--json'));
      const out = JSON.parse(r.stdout) as { id: string; platform: string; dir: string; layers: number; names: string[] };
      assert.match(out.platform, new RegExp(`^${platform}`));
      assert.match(out.id, /^sha256:[0-9a-f]{64}$/);
      assert.equal(out.layers, 3);
      assert.ok(out.dir.startsWith(cache));
      for (const line of jsonLines(r.stderr)) assert.ok((line as { progress?: { type: string } }).progress, 'stderr holds JSON progress lines only');
    }
  });

  it('prints the manifest digest for humans when the source has one (not a classic docker save)', async () => {
    const json = JSON.parse((await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '--json', '-q'))).stdout) as { manifestDigest: string };
    assert.match(json.manifestDigest, /^sha256:[0-9a-f]{64}$/);
    const human = (await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '--concurrency', '1'))).stdout;
    assert.match(human, new RegExp(`^digest: +${json.manifestDigest}$`, 'm'));
    assert.doesNotMatch((await expectExit(0, c('load', AMD64_TAR))).stdout, /^digest:/m);
  });

  it('cats /etc/arch of each architecture straight from the tar', async () => {
    for (const arch of ['amd64', 'arm64']) {
      const r = await expectExit(0, c('cat', MULTIARCH_TAR, '/etc/arch', '--arch', arch, '--quiet'));
      assert.equal(r.stdout.trim(), arch);
      assert.equal(r.stderr, '', '--quiet prints nothing on stderr');
    }
  });

  it('lists /bin/busybox and the /bin/sh symlink as JSON, with a sha256 matching cat', async () => {
    const [busybox] = jsonLines((await expectExit(0, c('ls', AMD64_TAR, '/bin/busybox', '--json'))).stdout) as LsEntry[];
    assert.equal(busybox?.path, '/bin/busybox');
    assert.equal(busybox.type, 'file');
    assert.equal(busybox.mode, '0755');
    assert.equal(busybox.uid, 0);
    assert.ok(busybox.size > 500_000);
    assert.equal(busybox.mtime, '1970-01-01T00:00:00.000Z');
    const bytes = (await expectExit(0, c('cat', AMD64_TAR, '/bin/sh', '-q'))).stdoutBytes;
    assert.equal(bytes.length, busybox.size, 'cat follows /bin/sh to the busybox binary');
    assert.equal(createHash('sha256').update(bytes).digest('hex'), busybox.sha256);

    const [sh] = jsonLines((await expectExit(0, c('ls', AMD64_TAR, '/bin/sh', '--json'))).stdout) as LsEntry[];
    assert.deepEqual([sh?.type, sh?.target], ['symlink', '/bin/busybox']);
    assert.equal(sh?.sha256, undefined);
  });

  it('lists the whole tree recursively: modes, whiteouts, ownership', async () => {
    const entries = jsonLines((await expectExit(0, c('ls', AMD64_TAR, '-R', '--json'))).stdout) as LsEntry[];
    const byPath = new Map(entries.map((e) => [e.path, e]));
    assert.equal(byPath.get('/tmp')?.mode, '1777', 'sticky bit kept');
    assert.equal(byPath.get('/tmp')?.type, 'dir');
    assert.deepEqual([byPath.get('/home/app')?.uid, byPath.get('/home/app')?.gid], [1000, 1000]);
    assert.equal(byPath.get('/bin/ls')?.target, 'busybox');
    assert.ok(byPath.has('/etc/motd') && byPath.has('/usr/share/vmimg/layer2.txt'), 'upper layer files');
    assert.ok(!byPath.has('/etc/issue'), 'whited out by layer 3');
    const paths = entries.map((e) => e.path);
    assert.deepEqual(paths, [...new Set(paths)], 'each path once');
    for (const e of entries) assert.ok(['file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo'].includes(e.type), e.type);
  });

  it('prints names, long listings and resolved paths for humans', async () => {
    const names = (await expectExit(0, c('ls', AMD64_TAR, '/bin'))).stdout.split('\n');
    assert.ok(names.includes('busybox') && names.includes('sh'));
    const long = (await expectExit(0, c('ls', AMD64_TAR, '/bin', '-l'))).stdout;
    assert.match(long, /^-rwxr-xr-x +0 +0 +\d+ 1970-01-01T00:00:00Z busybox$/m);
    assert.match(long, /^lrwxrwxrwx .* sh -> \/bin\/busybox$/m);
    assert.equal((await expectExit(0, c('resolve', AMD64_TAR, '/bin/sh'))).stdout, '/bin/busybox\n');
    assert.equal((await expectExit(0, c('resolve', AMD64_TAR, '/bin/../etc/./arch'))).stdout, '/etc/arch\n');
    const json = JSON.parse((await expectExit(0, c('resolve', AMD64_TAR, '/bin/sh', '--json'))).stdout) as unknown;
    assert.deepEqual(json, { path: '/bin/sh', resolved: '/bin/busybox' });
  });

  it('fails with exit 3 and the reason for a missing path', async () => {
    for (const cmd of ['cat', 'resolve', 'ls']) {
      const r = await expectExit(3, c(cmd, AMD64_TAR, '/no/such/file'));
      assert.match(r.stderr, /^vmimg: ERR_NOT_FOUND: \/no\/such\/file: no such file or directory in the image \(ENOENT\)$/m);
      assert.equal(r.stdout, '');
    }
  });

  it('fails with exit 5 when the tar has no image for the platform', async () => {
    const r = await expectExit(5, c('load', AMD64_TAR, '--arch', 'arm64'));
    assert.match(r.stderr, /^vmimg: .*arm64/m);
    await expectExit(5, c('load', MULTIARCH_TAR, '--platform', 'linux/s390x'));
  });
});

describe('vmimg inspect / images / export / rm / prune', () => {
  it('inspects a cached image by id and lists the platforms a tar offers', async () => {
    const loaded = JSON.parse((await expectExit(0, c('load', AMD64_TAR, '--json', '-q'))).stdout) as { id: string; name: string; names: string[] };
    assert.equal(loaded.name, 'docker.io/vmimg/busybox:latest');
    // the multi-arch sample loaded earlier for amd64 is the same image: its name stays on it
    assert.ok(loaded.names.includes('docker.io/vmimg/busybox:latest'), loaded.names.join(' '));
    const human = (await expectExit(0, c('inspect', loaded.id.slice(7, 19)))).stdout;
    assert.match(human, /^entrypoint: +\["\/bin\/sh"\]$/m);
    assert.match(human, /^layers: +3 /m);
    assert.match(human, /VMIMG_SAMPLE=1/);
    const json = JSON.parse((await expectExit(0, c('inspect', 'vmimg/busybox', '--json'))).stdout) as {
      id: string;
      config: { cmd: string[]; layerDetails: { size: number; diffId: string }[]; labels: Record<string, string> };
    };
    assert.equal(json.id, loaded.id);
    assert.deepEqual(json.config.cmd, ['-c', 'cat /etc/arch /etc/motd']);
    assert.equal(json.config.layerDetails.length, 3);
    assert.equal(json.config.labels['org.opencontainers.image.title'], 'vmimg-busybox-sample');

    const platforms = JSON.parse((await expectExit(0, c('inspect', MULTIARCH_TAR, '--platforms', '--json'))).stdout) as {
      platforms: { platform: string }[];
    };
    assert.deepEqual(platforms.platforms.map((p) => p.platform.split('/').slice(0, 2).join('/')).sort(), ['linux/amd64', 'linux/arm64']);
  });

  it('exports the most recent image, refuses a non-empty destination, replaces it with --force', async () => {
    const dst = join(await tmpDir('vmimg-cli-export-'), 'vm');
    const out = JSON.parse((await expectExit(0, c('export', dst, '--json'))).stdout) as { dir: string; id: string; layers: string[] };
    const files = readdirSync(dst).sort();
    assert.ok(files.includes('config.json'));
    for (const diffId of out.layers) {
      const hex = diffId.slice(7);
      assert.ok(files.includes(`${hex}.idx`) && files.includes(`${hex}.contents`), `${hex} pair`);
    }
    // The exported directory is itself an IMAGE argument.
    assert.equal((await expectExit(0, c('cat', dst, '/etc/arch'))).stdout.trim(), 'amd64');
    const r = await expectExit(1, c('export', dst, MULTIARCH_TAR, '--arch', 'arm64'));
    assert.match(r.stderr, /not empty\nhint: .*--force/);
    await expectExit(0, c('export', dst, MULTIARCH_TAR, '--arch', 'arm64', '--force', '-q'));
    assert.equal((await expectExit(0, c('cat', dst, '/etc/arch'))).stdout.trim(), 'arm64');
  });

  it('lists, removes and prunes cached images', async () => {
    const images = JSON.parse((await expectExit(0, c('images', '--json'))).stdout) as { id: string; names: string[]; platform: string }[];
    assert.ok(images.length >= 2);
    const busybox = images.find((i) => i.names.includes('docker.io/vmimg/busybox:latest'));
    assert.ok(busybox);
    const table = (await expectExit(0, c('images'))).stdout;
    assert.match(table, /^NAME +ID +PLATFORM +SIZE +CREATED$/m);
    assert.match(table, new RegExp(`docker.io/vmimg/busybox:latest +${busybox.id.slice(7, 19)} +linux/amd64`));

    assert.match((await expectExit(0, c('rm', 'docker.io/vmimg/busybox:latest'))).stdout, new RegExp(`removed ${busybox.id}`));
    const after = JSON.parse((await expectExit(0, c('images', '--json'))).stdout) as { id: string }[];
    assert.ok(!after.some((i) => i.id === busybox.id));
    await expectExit(3, c('rm', 'docker.io/vmimg/busybox:latest'));
    await expectExit(3, c('inspect', busybox.id.slice(7)));

    const pruned = JSON.parse((await expectExit(0, c('prune', '--json'))).stdout) as { bytesFreed: number; removedLayers: number };
    assert.ok(pruned.bytesFreed > 0 && pruned.removedLayers > 0, JSON.stringify(pruned));
    assert.match((await expectExit(0, c('prune'))).stdout, /^freed 0 B \(0 layers, 0 blobs\)$/m);
  });
});

describe('vmimg validate, usage and error reporting', () => {
  it('validates references and tars', async () => {
    assert.equal((await expectExit(0, ['validate', 'alpine'])).stdout, 'docker.io/library/alpine:latest\n');
    const ref = JSON.parse((await expectExit(0, ['validate', 'ghcr.io/a/b:1', '--json'])).stdout) as Record<string, string>;
    assert.deepEqual([ref.registry, ref.repository, ref.tag], ['ghcr.io', 'a/b', '1']);
    const tar = JSON.parse((await expectExit(0, ['validate', MULTIARCH_TAR, '--json'])).stdout) as { format: string; images: unknown[] };
    assert.equal(tar.format, 'oci-archive');
    assert.equal(tar.images.length, 2);
    const notTar = join(await tmpDir('vmimg-cli-'), 'notes.txt');
    writeFileSync(notTar, 'hello\n');
    const r = await expectExit(1, ['validate', notTar]);
    assert.match(r.stderr, /^vmimg: .*notes\.txt/m);
  });

  for (const [what, args] of [
    ['an invalid reference', ['validate', 'Upper/Case']],
    ['an invalid reference to pull', ['pull', 'bad@sha256:123']],
    ['an unknown command', ['frobnicate']],
    ['no command', []],
    ['an unknown option', ['images', '--bogus']],
    ['--arch with --platform', ['images', '--arch', 'amd64', '--platform', 'linux/amd64']],
    ['an unknown architecture', ['load', AMD64_TAR, '--arch', 'z80']],
    ['--username without --password-stdin', ['pull', '127.0.0.1:1/x', '--username', 'u']],
    ['a missing argument', ['cat', AMD64_TAR]],
    ['--concurrency 0', ['load', AMD64_TAR, '--concurrency', '0']],
    ['a fractional --concurrency', ['pull', '127.0.0.1:1/x', '--concurrency', '1.5']],
  ] as const) {
    it(`exits 2 for ${what}, with one message line and a hint`, async () => {
      const r = await expectExit(2, ['--cache-dir', cache, ...args]);
      const lines = r.stderr.trimEnd().split('\n');
      assert.match(lines[0] ?? '', /^vmimg: \S/);
      assert.match(lines[1] ?? '', /^hint: /);
      assert.equal(lines.length, 2, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }

  it('prints the stack with VMIMG_DEBUG=1', async () => {
    const r = await expectExit(2, ['validate', 'Upper/Case'], { env: { VMIMG_DEBUG: '1' } });
    assert.match(r.stderr, /\n\s+at /);
  });

  it('shows examples in --help and in each command help', async () => {
    const top = (await expectExit(0, ['--help'])).stdout;
    assert.match(top, /Examples:/);
    for (const cmd of ['pull', 'load', 'export', 'boot', 'inspect', 'images', 'ls', 'cat', 'resolve', 'rm', 'prune', 'validate']) {
      assert.match(top, new RegExp(`vmimg ${cmd}\\b`));
      const help = (await expectExit(0, [cmd, '--help'])).stdout;
      assert.match(help, /Examples:\n +vmimg /, `${cmd} --help`);
    }
  });

  it('exits 3 for export with an empty cache', async () => {
    const r = await expectExit(3, ['--cache-dir', await tmpDir('vmimg-cli-empty-'), 'export', join(await tmpDir('vmimg-cli-'), 'x')]);
    assert.match(r.stderr, /no image pulled or loaded yet\nhint: /);
  });
});
