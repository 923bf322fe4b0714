/**
 * Listeners on a pull's AbortSignal do not grow with the layers pulled at once (attack R13: a pull of
 * 10 000 layers printed `MaxListenersExceededWarning` even under -q; every layer's request, download
 * and flattening listened to the one signal). A 40-layer image (python3 writes the OCI layout, skopeo
 * pushes it to the real registry) is pulled 16 layers at a time: the caller's signal never holds more
 * than a couple of listeners, and the process hears no MaxListenersExceededWarning.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { parsePlatform, pull } from '../../src/index.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

const LAYERS = 40;
let registry: RunningRegistry;

const PY_LAYOUT = `
import gzip, hashlib, io, json, os, sys, tarfile
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f'{root}/blobs/sha256')
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(f'{root}/blobs/sha256/{h}', 'wb').write(b); return 'sha256:' + h
layers, diffs = [], []
for i in range(n):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w') as t:
        data = os.urandom(64 << 10); f = tarfile.TarInfo(f'layer{i}'); f.size = len(data); t.addfile(f, io.BytesIO(data))
    raw = bio.getvalue(); diffs.append('sha256:' + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, mtime=0)
    layers.append({'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip', 'digest': put(gz), 'size': len(gz)})
cfg = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {}, 'rootfs': {'type': 'layers', 'diff_ids': diffs}}).encode()
m = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
                'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': put(cfg), 'size': len(cfg)}, 'layers': layers}).encode()
md = put(m)
open(f'{root}/oci-layout', 'w').write('{"imageLayoutVersion":"1.0.0"}')
json.dump({'schemaVersion': 2, 'manifests': [{'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': md, 'size': len(m),
           'annotations': {'org.opencontainers.image.ref.name': 'many'}}]}, open(f'{root}/index.json', 'w'))
`;

before(async () => {
  requireTools(['python3', 'skopeo']);
  const work = await tmpDir('vmimg-listeners-');
  const layout = join(work, 'layout');
  await run('python3', ['-c', PY_LAYOUT, layout, String(LAYERS)]);
  registry = await startRegistry();
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:many`, `docker://${registry.host}/layers:many`]);
});

after(() => registry?.stop());

test(`pulling ${LAYERS} layers 16 at a time: a bounded number of listeners on the caller's signal, no MaxListenersExceededWarning`, async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  const controller = new AbortController();
  const { signal } = controller;
  let most = 0;
  const add = signal.addEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal['addEventListener']>) => {
    add(...args);
    most = Math.max(most, getEventListeners(signal, 'abort').length);
  };
  try {
    const image = await pull(`${registry.host}/layers:many`, { platform: parsePlatform('amd64'), cacheDir: await tmpDir('vmimg-listeners-cache-'), concurrency: 16, signal });
    assert.equal(image.config.layers.length, LAYERS);
  } finally {
    process.off('warning', onWarning);
  }
  // the warning is emitted on the next tick of the add that passed the limit: let it arrive
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings.filter((w) => /MaxListeners/.test(w)), []);
  assert.ok(most <= 3, `the caller's signal held ${most} abort listeners at once`);
});
