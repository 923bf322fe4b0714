/**
 * Where `vmimg serve` listens: plain HTTP only on loopback unless `insecure` (coded error naming the
 * fix otherwise); HTTPS with a certificate made by openssl, checked by curl against that certificate.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isVmimgError } from '../../src/index.js';
import { parseListen, startServe } from '../../src/serve/index.js';
import { curl } from '../helpers/curl.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

describe('serve: listening', () => {
  it('plain HTTP beyond loopback is refused unless insecure', async () => {
    const cacheDir = await tmpDir('vmimg-serve-listen-');
    await assert.rejects(startServe({ cacheDir, listen: '0.0.0.0:0', upstream: 'http://127.0.0.1:9' }), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_INVALID_ARGUMENT'), String(err));
      assert.match((err as { hint?: string }).hint ?? '', /--tls-cert/);
      return true;
    });
    const open = await startServe({ cacheDir, listen: '0.0.0.0:0', upstream: 'http://127.0.0.1:9', insecure: true });
    await open.shutdown();
    assert.throws(() => parseListen('no-port'), (err: unknown) => isVmimgError(err, 'ERR_INVALID_ARGUMENT'));
    assert.deepEqual(parseListen(':5050'), { hostname: '127.0.0.1', port: 5050 });
  });

  it('HTTPS with --tls-cert/--tls-key: curl verifies the certificate and gets /v2/', async () => {
    requireTools(['openssl', 'curl']);
    const dir = await tmpDir('vmimg-serve-tls-');
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const serve = await startServe({ cacheDir: join(dir, 'cache'), listen: '0.0.0.0:0', upstream: 'http://127.0.0.1:9', tls: { cert, key } });
    try {
      assert.match(serve.url, /^https:\/\//);
      const port = serve.host.slice(serve.host.lastIndexOf(':') + 1);
      const r = await curl(`https://127.0.0.1:${port}/v2/`, ['--cacert', cert]);
      assert.equal(r.status, 200);
      assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
    } finally {
      await serve.shutdown();
    }
  });

  it('a bad PEM (not a certificate, not a key, a key of another pair) is ERR_INVALID_ARGUMENT naming the option', async () => {
    requireTools(['openssl']);
    const dir = await tmpDir('vmimg-serve-pem-');
    const pair = async (name: string): Promise<[string, string]> => {
      const [cert, key] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)];
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1']);
      return [cert, key];
    };
    const [certA, keyA] = await pair('a');
    const [, keyB] = await pair('b');
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    const cases: [{ cert: string; key: string }, RegExp][] = [
      [{ cert: garbage, key: keyA }, /^--tls-cert .*garbage\.pem: not a PEM certificate/],
      [{ cert: keyA, key: keyA }, /^--tls-cert .*a\.key: not a PEM certificate/],
      [{ cert: certA, key: certA }, /^--tls-key .*a\.crt: not a PEM private key/],
      [{ cert: certA, key: keyB }, /^--tls-key .*b\.key is not the private key of --tls-cert .*a\.crt/],
    ];
    for (const [tls, message] of cases) {
      await assert.rejects(startServe({ cacheDir: join(dir, 'cache'), listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:9', tls }), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_INVALID_ARGUMENT'), String(err));
        assert.match((err as Error).message, message);
        return true;
      });
    }
  });
});
