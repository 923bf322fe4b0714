// The direct GET (src/registry/direct-get.ts): a blob body read by node:http into 1 MiB blocks on a
// connection of its own. Against the real docker-registry (token auth: 401, token, retry; Range), HTTPS (vmimg serve
// with an openssl certificate in front of it), node:http answering chunked, and a raw loopback server
// for the framings and faults a registry does not produce (a body to the connection's end, an interim
// 1xx answer, a cut body, an oversized or broken head).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/index.js';
import { BLOCK_BYTES, directGet, DirectBody } from '../../src/registry/direct-get.js';
import { BlockPool } from '../../src/util/block-pool.js';
import { startServe } from '../../src/serve/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk);
  return Buffer.concat(parts);
}

/** A loopback TCP server answering every connection with `answer(socket)`. */
async function rawServer(answer: (write: (s: string | Buffer) => void, end: () => void) => void): Promise<{ url: string; server: Server }> {
  const server = createNetServer((socket) => {
    socket.once('data', () => answer((s) => socket.write(s), () => socket.end()));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, server };
}

describe('direct GET against docker-registry with token auth', () => {
  let reg: RunningRegistry;
  let layer: { digest: string; size: number; mediaType: string };
  before(async () => {
    reg = await startRegistry({ auth: 'token', users: { tester: 'secret' } });
    const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'direct' });
    const digest = await pushLayout(image.ref, reg.host, 'lib/busybox:1', { creds: reg.creds! });
    layer = (JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { layers: typeof layer[] }).layers[0]!;
  });
  after(() => reg?.stop());

  test('the 401 gets a token, the retry reads the blob whole; a Range answer starts at its offset', async () => {
    const client = new RegistryClient({ env: {}, credentials: { [reg.host]: { username: 'tester', password: 'secret' } } });
    const repo = { registry: reg.host, repository: 'lib/busybox' };
    try {
      const whole = await client.openBlob(repo, layer, { direct: true });
      assert.ok(whole.stream instanceof DirectBody, 'read by the direct GET');
      assert.equal(whole.length, layer.size);
      const bytes = await collect(whole.stream);
      assert.equal(sha(bytes), layer.digest);
      const ranged = await client.openBlob(repo, layer, { direct: true, offset: 1000 });
      assert.equal(ranged.offset, 1000);
      assert.ok((await collect(ranged.stream)).equals(bytes.subarray(1000)));
    } finally {
      await client.close();
    }
  });

  test('HTTPS: through vmimg serve with an openssl certificate, verified against it', async () => {
    requireTools(['openssl']);
    const dir = await tmpDir('vmimg-direct-tls-');
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const serve = await startServe({ cacheDir: join(dir, 'cache'), listen: '127.0.0.1:0', upstream: reg.url, tls: { cert, key }, registry: { env: {}, credentials: { [reg.host]: { username: 'tester', password: 'secret' } } } });
    try {
      const url = `${serve.url}/v2/lib/busybox/blobs/${layer.digest}`;
      const res = await directGet(url, {}, undefined, { tls: { ca: readFileSync(cert) } });
      assert.equal(res.status, 200);
      assert.equal(sha(await collect(res.body)), layer.digest);
      // a certificate nobody vouches for is refused: ERR_NETWORK naming TLS
      await assert.rejects(directGet(url, {}, undefined, {}), (e: unknown) => isVmimgError(e, 'ERR_NETWORK') && /TLS|certificate/i.test(e.message));
    } finally {
      await serve.shutdown();
    }
  });
});

describe('direct GET framings and faults', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  test('chunked (node:http without a length): the chunks decoded, in order', async () => {
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const server = createHttpServer((_req, res) => {
      for (let i = 0; i < data.length; i += 100_000) res.write(data.subarray(i, i + 100_000));
      res.end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const res = await directGet(`http://127.0.0.1:${(server.address() as AddressInfo).port}/b`, {}, undefined);
    assert.match(String(res.headers['transfer-encoding']), /chunked/);
    assert.ok((await collect(res.body)).equals(data));
  });

  test('a body to the connection\'s end, after an interim 103 answer', async () => {
    const { url, server } = await rawServer((write, end) => {
      write('HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\nhello ');
      setTimeout(() => {
        write('world');
        end();
      }, 20);
    });
    servers.push(server);
    const res = await directGet(url, {}, undefined);
    assert.equal(res.status, 200);
    assert.equal((await collect(res.body)).toString(), 'hello world');
  });

  test('a body cut before its Content-Length: the bytes that came, then a retryable ERR_NETWORK', async () => {
    const { url, server } = await rawServer((write, end) => {
      write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
      end();
    });
    servers.push(server);
    const res = await directGet(url, {}, undefined);
    const got: Buffer[] = [];
    await assert.rejects((async () => {
      for await (const chunk of res.body) got.push(chunk);
    })(), (e: unknown) => isVmimgError(e, 'ERR_NETWORK') && e.details?.retryable === true);
    assert.equal(Buffer.concat(got).toString(), '0123456789', 'what arrived is delivered before the error');
  });

  test('an oversized head, a broken status line and conflicting lengths are ERR_REGISTRY_ERROR', async () => {
    const heads = [`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`, 'SPDY/3 200 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'];
    for (const head of heads) {
      const { url, server } = await rawServer((write) => write(head));
      servers.push(server);
      await assert.rejects(directGet(url, {}, undefined), (e: unknown) => isVmimgError(e, 'ERR_REGISTRY_ERROR'), head.slice(0, 30));
    }
  });

  test('an abort mid-body ends it with ERR_ABORTED; a refused connection is a retryable ERR_NETWORK', async () => {
    const { url, server } = await rawServer((write) => write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc'));
    servers.push(server);
    const ac = new AbortController();
    const res = await directGet(url, {}, ac.signal);
    setTimeout(() => ac.abort(), 30);
    await assert.rejects(collect(res.body), (e: unknown) => isVmimgError(e, 'ERR_ABORTED'));
    const closed = (server.address() as AddressInfo).port;
    server.close();
    await assert.rejects(directGet(`http://127.0.0.1:${closed}/x`, {}, undefined), (e: unknown) => isVmimgError(e, 'ERR_NETWORK') && e.details?.retryable === true);
  });

  test('pooled blocks: a held chunk keeps its bytes while the body reuses released blocks; all come back', async () => {
    const data = Buffer.alloc(12 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + (i >> 20)) & 0xff;
    const server = createHttpServer((_req, res) => res.end(data));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const res = await directGet(`http://127.0.0.1:${(server.address() as AddressInfo).port}/b`, {}, undefined);
    const pool = new BlockPool(BLOCK_BYTES, 8, { scrub: true }); // a block read after its release shows 0xdd
    res.body.usePool(pool);
    const copies: Buffer[] = [];
    let held: { chunk: Buffer; at: number } | undefined;
    let at = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      copies.push(Buffer.from(chunk));
      if (held === undefined && at > 2 * BLOCK_BYTES) held = { chunk, at }; // a pooled one, kept to the end
      else pool.release(chunk);
      at += chunk.length;
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(Buffer.concat(copies).equals(data), 'every byte as sent, though blocks were reused');
    assert.ok(held !== undefined && held.chunk.equals(data.subarray(held.at, held.at + held.chunk.length)), 'the held chunk was not reused');
    const free = pool.freeBlocks;
    assert.ok(free >= 1, 'released blocks are back on the free list');
    pool.release(held.chunk);
    assert.equal(pool.freeBlocks, free + 1, 'the held block comes back with its last reference');
  });

  test('two bodies at once on plain connections: each intact', async () => {
    const bodies = [0, 1].map((k) => {
      const d = Buffer.alloc(6 << 20);
      for (let i = 0; i < d.length; i++) d[i] = (i * (k + 3)) & 0xff;
      return d;
    });
    const server = createHttpServer((req, res) => {
      const d = bodies[req.url === '/0' ? 0 : 1]!;
      for (let i = 0; i < d.length; i += 200_000) res.write(d.subarray(i, i + 200_000));
      res.end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const got = await Promise.all([0, 1].map(async (k) => collect((await directGet(`${base}/${k}`, {}, undefined)).body)));
    assert.ok(got[0]!.equals(bodies[0]!) && got[1]!.equals(bodies[1]!));
  });

  // Body mode (a Content-Length answer on a plain connection): after the head, the kernel reads the body
  // straight into the blocks and node:http's parser sees none of it. Bytes node:http took with the head
  // must still come first, a cut must still be a retryable ERR_NETWORK after the bytes that came, and the
  // body ends at its length whatever else the connection carries.
  test('body mode: bytes with the head, then the rest in pieces, in order; extra bytes past the length are not body', async () => {
    const data = Buffer.alloc((5 << 20) + 12_345);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 16)) & 0xff;
    for (const withHead of [0, 1, 70_000]) {
      const { url, server } = await rawServer((write, end) => {
        write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`), data.subarray(0, withHead)]));
        let at = withHead;
        const next = (): void => {
          const n = at < (1 << 20) ? 999 : 300_000; // small pieces first: reads of every size
          const piece = data.subarray(at, (at += n));
          if (at < data.length) {
            write(piece);
            return void setImmediate(next);
          }
          write(Buffer.concat([piece, Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz')])); // in the same read: not body
          setTimeout(end, 20);
        };
        setTimeout(next, 10);
      });
      servers.push(server);
      const res = await directGet(url, {}, undefined);
      assert.ok((await collect(res.body)).equals(data), `${withHead} body bytes with the head`);
    }
  });

  test('body mode: a slow consumer holds the connection back, and every byte arrives', async () => {
    const data = Buffer.alloc(9 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 5 + (i >> 12)) & 0xff;
    const server = createHttpServer((_req, res) => res.end(data));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const res = await directGet(`http://127.0.0.1:${(server.address() as AddressInfo).port}/b`, {}, undefined);
    const parts: Buffer[] = [];
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      parts.push(Buffer.from(chunk));
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(Buffer.concat(parts).equals(data));
  });

  test('body mode: a body cut after the head\'s read: the bytes that came, then a retryable ERR_NETWORK', async () => {
    const { url, server } = await rawServer((write, end) => {
      write('HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\nabc');
      setTimeout(() => {
        write(Buffer.alloc(200_000, 0x61));
        setTimeout(end, 20);
      }, 20);
    });
    servers.push(server);
    const res = await directGet(url, {}, undefined);
    let got = 0;
    await assert.rejects((async () => {
      for await (const chunk of res.body as AsyncIterable<Buffer>) got += chunk.length;
    })(), (e: unknown) => isVmimgError(e, 'ERR_NETWORK') && e.details?.retryable === true);
    assert.equal(got, 200_003, 'what arrived is delivered before the error');
  });

  test('a header value with a line break is refused before anything is sent', async () => {
    await assert.rejects(directGet('http://127.0.0.1:9/x', { authorization: 'Bearer a\r\nX-Evil: 1' }, undefined), (e: unknown) => isVmimgError(e, 'ERR_INVALID_ARGUMENT'));
  });
});
