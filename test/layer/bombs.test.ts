/**
 * Resource bombs (adversarial report R01–R03, R05, R19, R20): tiny archives that declare huge
 * expansions are refused with ERR_TOO_LARGE (exit 6) naming the limit and how to raise it, leave
 * nothing in the cache, keep sparse holes as holes, and stop at once on Ctrl-C.
 * Inputs are written by python3's tarfile/zlib (test/helpers/bombs.py).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTool, run, runFull, tmpDir, type RunError } from '../helpers/tools.js';
import { BIN, expectExit, vmimg, type CliResult } from '../cli/run.js';

const BUILDER = join(REPO_ROOT, 'test', 'helpers', 'bombs.py');

/** Builds an OCI archive of one bomb with bombs.py. */
async function bomb(kind: string, ...args: string[]): Promise<string> {
  requireTool('python3');
  const out = join(await tmpDir('vmimg-bomb-'), `${kind}.tar`);
  await run('python3', [BUILDER, out, kind, ...args]);
  return out;
}

/** Files under the cache's layers and images dirs (temp files included). */
function cacheFiles(cache: string): string[] {
  const out: string[] = [];
  for (const sub of ['layers/sha256', 'images']) {
    const dir = join(cache, sub);
    if (existsSync(dir)) for (const f of readdirSync(dir, { recursive: true })) out.push(join(sub, String(f)));
  }
  return out;
}

async function load(tar: string, cache: string, ...flags: string[]): Promise<CliResult> {
  return vmimg(['--cache-dir', cache, 'load', tar, '--platform', 'linux/amd64', ...flags], { env: { VMIMG_CONFIG: join(cache, 'none.json') } });
}

/** Exit 6 with the limit's name and flag/key in the message or hint, and nothing left in the cache. */
async function refused(r: CliResult, cache: string, how: RegExp): Promise<void> {
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /expands past|more than|no matching line/);
  assert.match(r.stderr, how);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(cacheFiles(cache), [], 'nothing left in the cache');
}

describe('expansion limits', () => {
  it('an 8 PiB sparse file in a 10 KB archive is refused at its header (R01)', async () => {
    const cache = await tmpDir('vmimg-bomb-cache-');
    await refused(await load(await bomb('sparse', String(2 ** 53 - 1)), cache), cache, /8\.0 PiB[\s\S]*--max-layer-ratio/);
    // Raising the ratio still leaves the 64 GiB default: refused just as quickly.
    const r = await load(await bomb('sparse', String(2 ** 53 - 1)), cache, '--max-layer-ratio', '1e12');
    await refused(r, cache, /expands past 64 GiB[\s\S]*--max-layer-size/);
  });

  it('a gzip of zeros past 1000× its size is refused by default, and past --max-layer-size (R03)', async () => {
    const tar = await bomb('zeros', String(32 * 2 ** 20)); // ~32 KiB of gzip: deflate tops out near 1032×
    const cache = await tmpDir('vmimg-bomb-cache-');
    await refused(await load(tar, cache), cache, /1000× its compressed size[\s\S]*--max-layer-ratio/);
    await refused(await load(tar, cache, '--max-layer-size', '4M', '--max-layer-ratio', '1e6'), cache, /past 4 MiB[\s\S]*--max-layer-size/);
  });

  // The same class through the zstd decoder (fzstd emitted a whole read chunk of RLE blocks at once: a 66 KiB
  // layer held 4.2 GiB before the ratio limit saw it), from both an OCI archive and an OCI layout directory.
  it('a zstd bomb is refused within a bounded peak RSS, from an archive and from a layout', async () => {
    const time = requireTool('time');
    const tar = await bomb('zeros', String(2 ** 30), 'zstd'); // ~33 KiB of zstd for 1 GiB of tar
    const layout = await tmpDir('vmimg-bomb-layout-');
    await run('tar', ['-xf', tar, '-C', layout]);
    for (const source of [tar, `oci:${layout}:latest`]) {
      const cache = await tmpDir('vmimg-bomb-cache-');
      const rssFile = join(cache, 'rss');
      const args = ['-f', '%M', '-o', rssFile, process.execPath, BIN, '--cache-dir', cache, 'load', source, '--platform', 'linux/amd64'];
      const r = await runFull(time, args, { env: { ...process.env, NO_COLOR: '1', VMIMG_CONFIG: join(cache, 'none.json') } }).then(
        (ok) => ({ code: 0, ...ok }),
        (err: RunError) => ({ code: err.exitCode, stdout: err.stdout, stderr: err.stderr }),
      );
      const rssMiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1)) / 1024;
      await refused({ ...r, signal: null, stdoutBytes: Buffer.from(r.stdout) }, cache, /1000× its compressed size[\s\S]*--max-layer-ratio/);
      assert.ok(rssMiB < 250, `${source}: peak RSS ${rssMiB.toFixed(0)} MiB refusing a 33 KiB layer`);
    }
  });

  it('a bad --max-layer-size is a usage error', async () => {
    const cache = await tmpDir('vmimg-bomb-cache-');
    writeFileSync(join(cache, 'x.tar'), '');
    const r = await load(join(cache, 'x.tar'), cache, '--max-layer-size', 'lots');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--max-layer-size must be a size such as 64G/);
  });
});

describe('sparse files stay sparse', () => {
  it('holes are not written: .contents has the logical size and almost no blocks', async () => {
    const cache = await tmpDir('vmimg-bomb-cache-');
    const size = 8 * 2 ** 20;
    const r = await load(await bomb('sparse', String(size)), cache, '--max-layer-ratio', '1e6', '--json');
    assert.equal(r.code, 0, r.stderr);
    const contents = readdirSync(join(cache, 'layers', 'sha256')).filter((f) => f.endsWith('.contents'));
    assert.equal(contents.length, 1);
    const st = statSync(join(cache, 'layers', 'sha256', contents[0]!));
    assert.equal(st.size, size);
    assert.ok(st.blocks * 512 <= 64 * 1024, `${st.blocks} blocks allocated for a file of 5 bytes and a hole`);
    const cat = await expectExit(0, ['cat', JSON.parse(r.stdout).dir, '/big']);
    assert.equal(cat.stdoutBytes.length, size);
    assert.equal(cat.stdoutBytes.subarray(0, 5).toString(), 'hello');
    assert.ok(cat.stdoutBytes.subarray(5).every((b) => b === 0));
  });

  // An 8 TiB hole is hours of hashing zeros: a Ctrl-C that waits for the file's digest (it did: ~50 s for
  // 60 GiB) fails by the timeout instead of passing slowly.
  it('Ctrl-C while a large sparse file is hashed stops at once and leaves no temp file (R02)', { timeout: 120_000 }, async () => {
    const cache = await tmpDir('vmimg-bomb-cache-');
    let sent = false;
    const r = await vmimg(['--cache-dir', cache, 'load', await bomb('sparse', String(8 * 2 ** 40)), '--max-layer-ratio', '1e15', '--max-layer-size', '16T'], {
      env: { VMIMG_CONFIG: join(cache, 'none.json') },
      onSpawn: (child) => {
        child.stderr!.on('data', (b: Buffer) => {
          if (!sent && /extracting/.test(b.toString())) {
            sent = true;
            setTimeout(() => child.kill('SIGINT'), 300);
          }
        });
      },
    });
    assert.ok(sent, `never saw the layer start: ${r.stderr}`);
    assert.equal(r.code, 130, r.stderr);
    assert.deepEqual(cacheFiles(cache), [], 'no temp file left');
  });
});

describe('limits from the config file', () => {
  async function withConfig(limits: object): Promise<{ cache: string; env: Record<string, string> }> {
    const cache = await tmpDir('vmimg-bomb-cache-');
    const config = join(cache, 'config.json');
    writeFileSync(config, JSON.stringify({ limits }));
    return { cache, env: { VMIMG_CONFIG: config } };
  }

  it('xattr bytes per layer (R19)', async () => {
    const { cache, env } = await withConfig({ maxLayerXattrBytes: '1M' });
    const tar = await bomb('xattrs', '20', '4', '65536');
    const r = await vmimg(['--cache-dir', cache, 'load', tar], { env });
    await refused(r, cache, /1 MiB of xattrs[\s\S]*maxLayerXattrBytes/);
  });

  it('entries per layer (R05)', async () => {
    const { cache, env } = await withConfig({ maxLayerEntries: 500 });
    const r = await vmimg(['--cache-dir', cache, 'load', await bomb('entries', '1000')], { env });
    await refused(r, cache, /more than 500 entries[\s\S]*maxLayerEntries/);
  });

  it('zstd window (a frame declaring 16 MiB: refused by default, loads when the limit allows it)', async () => {
    const tar = await bomb('zeros', String(2 ** 20), 'zstd', '--long=24');
    const refusedRun = await withConfig({});
    await refused(await vmimg(['--cache-dir', refusedRun.cache, 'load', tar], { env: refusedRun.env }), refusedRun.cache, /16 MiB window[\s\S]*maxZstdWindow/);
    const { cache, env } = await withConfig({ maxZstdWindow: '16M', maxLayerRatio: 1e6 });
    const r = await vmimg(['--cache-dir', cache, 'load', tar, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
  });

  it('a malformed limit names the file and the key', async () => {
    const { cache, env } = await withConfig({ maxLayerSize: 'huge' });
    writeFileSync(join(cache, 'x.tar'), '');
    const r = await vmimg(['--cache-dir', cache, 'load', join(cache, 'x.tar')], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /config\.json.*"limits"\."maxLayerSize"/);
  });
});

describe('/etc/passwd is read only as far as needed (R20)', () => {
  const SIZE = String(64 * 2 ** 20);

  it('a user on the first line of a huge sparse /etc/passwd resolves', async () => {
    const cache = await tmpDir('vmimg-bomb-cache-');
    const tar = await bomb('passwd', SIZE, 'app:x:1000:1001::/home/app:/bin/sh', 'app');
    const r = await load(tar, cache, '--max-layer-ratio', '1e6', '--json');
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(readFileSync(join(JSON.parse(r.stdout).dir, 'config.json'), 'utf8'));
    assert.deepEqual([config.uid, config.gid], [1000, 1001]);
  });

  it('a user not found within the cap is ERR_TOO_LARGE naming maxUserFileBytes', async () => {
    const cache = await tmpDir('vmimg-bomb-cache-');
    const tar = await bomb('passwd', SIZE, 'root:x:0:0::/root:/bin/sh', 'app');
    const r = await load(tar, cache, '--max-layer-ratio', '1e6');
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /\/etc\/passwd has no matching line in its first 8 MiB[\s\S]*maxUserFileBytes/);
    assert.ok(!existsSync(join(cache, 'images')) || readdirSync(join(cache, 'images')).every((d) => !existsSync(join(cache, 'images', d, 'config.json'))));
  });
});

describe('many layers under a low file descriptor limit (R13)', () => {
  /** vmimg in a child shell whose `ulimit -n` is `fds`. */
  async function limited(fds: number, args: string[]): Promise<CliResult> {
    const shell = ['-c', `ulimit -n ${fds} && exec "$0" "$@"`, process.execPath, BIN, ...args];
    const r = await runFull('bash', shell, { env: { ...process.env, NO_COLOR: '1' } }).then(
      (ok) => ({ code: 0, ...ok }),
      (err: RunError) => ({ code: err.exitCode, stdout: err.stdout, stderr: err.stderr }),
    );
    return { ...r, signal: null, stdoutBytes: Buffer.from(r.stdout) };
  }

  it('130 layers load, reload from the cache, list, read and export with ulimit -n 128', async () => {
    const N = 130;
    const tar = await bomb('layers', String(N));
    const cache = await tmpDir('vmimg-bomb-cache-');
    const out = join(cache, 'root.tar');
    for (const args of [['load', tar, '--json'], ['load', tar, '--json']]) {
      // the second load finds every layer in the cache: those lookups must not exhaust descriptors either
      const r = await limited(128, ['--cache-dir', cache, ...args]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /EMFILE|Warning|\n\s+at /, args.join(' '));
    }
    const dir = JSON.parse((await expectExit(0, ['--cache-dir', cache, 'load', tar, '--json'])).stdout).dir as string;
    for (const args of [['ls', dir, '/l'], ['cat', dir, `/l/${N - 1}`], ['export', out, dir, '--format', 'tar']]) {
      const r = await limited(128, ['--cache-dir', cache, ...args]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /EMFILE|Warning|\n\s+at /, args.join(' '));
      if (args[0] === 'ls') assert.equal(r.stdout.trim().split('\n').length, N);
      if (args[0] === 'cat') assert.equal(r.stdout, String(N - 1));
    }
    const names = (await run('tar', ['-tf', out])).split('\n').filter((n) => /^\.?\/?l\/\d+$/.test(n));
    assert.equal(names.length, N);
  });
});
