/**
 * Where `vmimg serve` listens: plain HTTP only on loopback unless `insecure` (coded error naming the
 * fix otherwise); HTTPS with a certificate made by openssl, checked by curl against that certificate.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
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
});
