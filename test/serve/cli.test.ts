/**
 * `vmimg serve` as a process: upstream credentials from vmimg's chain (a token-auth docker-registry
 * refusing anonymous pulls), one JSON access-log line per request on stdout, `vmimg prune` on the
 * same cache keeping what serve holds (its lease), and SIGTERM letting an in-flight blob finish before
 * the process exits 0.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { body, request } from '../helpers/http.js';
import { join } from 'node:path';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';
import { BIN, expectExit } from '../cli/run.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let layer: { digest: string; size: number };
let cacheDir: string;
let child: ChildProcess;
let url: string;
const stdout: string[] = [];
const stderr: string[] = [];

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  registry = await startRegistry({ auth: 'token', issuer: { anonymousPull: false } });
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-cli' });
  const digest = await pushLayout(image.ref, registry.host, 'lib/busybox:1', { creds: registry.creds! });
  layer = (JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] }).layers[0]!;
  proxy = await startFaultProxy(registry.url);
  cacheDir = await tmpDir('vmimg-serve-cli-');
  const [user, password] = registry.creds!.split(':');
  child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--upstream', proxy.url, '--cache-dir', cacheDir], {
    env: { ...process.env, VMIMG_REGISTRY_AUTH: JSON.stringify({ [proxy.host]: { username: user, password } }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (b: Buffer) => stdout.push(b.toString()));
  url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      stderr.push(b.toString());
      const m = /serving .* on (http:\/\/\S+)/.exec(stderr.join(''));
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`vmimg serve exited ${code}: ${stderr.join('')}`)));
  });
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await proxy?.stop();
  await registry?.stop();
});

describe('vmimg serve (the process)', () => {
  it('pulls from a token-auth upstream with credentials from the chain, and logs one JSON line per request', async () => {
    const res = await request(`${url}/v2/lib/busybox/manifests/1`);
    const text = (await body(res)).toString();
    assert.equal(res.statusCode, 200, text);
    while (!stdout.join('').includes('"/v2/lib/busybox/manifests/1"')) await new Promise((r) => setTimeout(r, 20)); // written once the answer closed
    const lines = stdout.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => l.path === '/v2/lib/busybox/manifests/1');
    assert.ok(line, stdout.join(''));
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 200);
    assert.equal(line.cache, 'miss');
    assert.equal(line.upstream, proxy.url);
  });

  it('vmimg prune on the same cache keeps what serve holds', async () => {
    assert.equal(sha(await body(await request(`${url}/v2/lib/busybox/blobs/${layer.digest}`))), layer.digest);
    // the last byte goes once the blob is verified; the commit follows: wait for no download in flight
    while (!(await body(await request(`${url}/metrics`))).toString().includes('vmimg_serve_downloads_in_flight 0')) await new Promise((r) => setTimeout(r, 20));
    await expectExit(0, ['prune', '--cache-dir', cacheDir]);
    assert.ok(existsSync(join(cacheDir, 'blobs', 'sha256', layer.digest.slice(7))));
    const hit = await request(`${url}/v2/lib/busybox/blobs/${layer.digest}`);
    assert.equal(hit.headers['x-vmimg-cache'], 'hit');
    await body(hit);
  });

  it('SIGTERM: an answer in flight finishes, then the process exits 0', async () => {
    const other = await buildBusyboxLayout({ arch: 'arm64', tag: 'serve-cli' });
    const digest = await pushLayout(other.ref, registry.host, 'lib/busybox:arm', { creds: registry.creds! });
    const l = (JSON.parse(readFileSync(join(other.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { layers: { digest: string }[] }).layers[0]!;
    let release!: () => void;
    let reached!: () => void;
    const held = new Promise<void>((r) => (reached = r));
    proxy.add({ method: 'GET', path: `/blobs/${l.digest}`, fault: { kind: 'hold', afterBytes: 100_000, reached, release: new Promise((r) => (release = r)) } });
    const res = await request(`${url}/v2/lib/busybox/blobs/${l.digest}`);
    await held;
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await new Promise<void>((r) => {
      const check = (): void => (stderr.join('').includes('shutting down') ? r() : void setTimeout(check, 20));
      check();
    });
    release();
    assert.equal(sha(await body(res)), l.digest);
    assert.equal(await exited, 0, stderr.join(''));
  });
});

describe('vmimg serve: options', () => {
  it('an unreadable --tls-cert is one coded line naming the option, not a raw ENOENT', async () => {
    const dir = await tmpDir('vmimg-serve-tls-');
    const r = await expectExit(2, ['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:1', '--cache-dir', dir, '--tls-cert', join(dir, 'nonexist'), '--tls-key', join(dir, 'nokey')]);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, /ERR_INVALID_ARGUMENT/, r.stderr);
    assert.match(lines[0]!, /--tls-cert .*nonexist: cannot read it \(ENOENT\)/, r.stderr);
    assert.doesNotMatch(r.stderr, /open '/, r.stderr);
  });

  it('a readable file that is not PEM is one coded line naming the option, not an OpenSSL error', async () => {
    const dir = await tmpDir('vmimg-serve-tls-');
    writeFileSync(join(dir, 'cert.pem'), 'not a certificate\n');
    writeFileSync(join(dir, 'key.pem'), 'not a key\n');
    const r = await expectExit(2, ['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:1', '--cache-dir', dir, '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, /^vmimg: ERR_INVALID_ARGUMENT: --tls-cert .*cert\.pem: not a PEM certificate/, r.stderr);
    assert.ok(lines.length <= 2, r.stderr);
  });
});

describe('vmimg serve: the disk bound\'s options', () => {
  it('--max-cache-size and --min-free reach the server: a blob past either bound is evicted once stored; the serving line says the bound; Ctrl-C exits 0', async () => {
    const [user, password] = registry.creds!.split(':');
    for (const bound of [['--max-cache-size', '1', '--min-free', '0'], ['--min-free', '99%']]) {
      const dir = await tmpDir('vmimg-serve-bound-');
      const p = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--upstream', proxy.url, '--cache-dir', dir, ...bound], {
        env: { ...process.env, VMIMG_REGISTRY_AUTH: JSON.stringify({ [proxy.host]: { username: user, password } }) },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      try {
        const err: string[] = [];
        const at = await new Promise<string>((resolve, reject) => {
          p.stderr!.on('data', (b: Buffer) => {
            err.push(b.toString());
            const m = /serving .* on (http:\/\/\S+)/.exec(err.join(''));
            if (m) resolve(m[1]!);
          });
          p.once('exit', (code) => reject(new Error(`vmimg serve exited ${code}: ${err.join('')}`)));
        });
        assert.equal(sha(await body(await request(`${at}/v2/lib/busybox/blobs/${layer.digest}`))), layer.digest);
        const evicted = async () => Number(/^vmimg_serve_evicted_total (\d+)$/m.exec((await body(await request(`${at}/metrics`))).toString())?.[1]);
        for (const deadline = Date.now() + 15_000; (await evicted()) === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
        assert.equal(await evicted(), 1, `${bound.join(' ')}: ${err.join('')}`);
        assert.equal(existsSync(join(dir, 'blobs', 'sha256', layer.digest.slice(7))), false);
        // the bound in effect is on the serving line
        assert.match(err.join(''), bound[0] === '--max-cache-size' ? /serving .* \(at most 1 bytes of blobs\)\n/ : /serving .* \(keeping [\d.]+ [KMGT]iB free\)\n/);
        // Ctrl-C stops a server cleanly, as SIGTERM does
        const exited = new Promise<number | null>((r) => p.once('exit', r));
        p.kill('SIGINT');
        assert.equal(await exited, 0, err.join(''));
      } finally {
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    }
  });

  it('a bad --max-cache-size or --min-free is one coded line naming the option, before anything starts', async () => {
    const dir = join(await tmpDir('vmimg-serve-bound-'), 'cache');
    for (const [flag, value] of [['--max-cache-size', '12Q'], ['--max-cache-size', '0'], ['--min-free', '100%'], ['--min-free', 'much']]) {
      const r = await expectExit(2, ['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:1', '--cache-dir', dir, flag!, value!]);
      const lines = r.stderr.trim().split('\n');
      assert.match(lines[0]!, new RegExp(`^vmimg: ERR_(INVALID_ARGUMENT|USAGE): ${flag} must be a size`), r.stderr);
    }
    assert.equal(existsSync(dir), false, 'no cache dir made');
  });
});

describe('vmimg serve: help', () => {
  it('serve --help does not list --arch or --platform (serve answers any platform); pull --help still does', async () => {
    const serve = await expectExit(0, ['serve', '--help']);
    assert.match(serve.stdout, /--tls-cert/);
    assert.doesNotMatch(serve.stdout, /--arch|--platform/);
    assert.match((await expectExit(0, ['pull', '--help'])).stdout, /--arch/);
  });
});
