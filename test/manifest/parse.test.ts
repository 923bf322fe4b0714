import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MANIFEST_BYTES, MediaType, parseManifestDocument, parseImageConfig } from '../../src/manifest/index.js';
import { isVmimgError } from '../../src/errors.js';
import { alpineConfig, buf, dockerManifest, dockerManifestList, h, ociIndexWithAttestations, ociManifest, patched, schema1Signed } from './fixtures.js';

describe('parseManifestDocument: accepted documents', () => {
  // [name, body, header, expected kind, expected mediaType, item count]
  const cases: [string, unknown, string | undefined, 'manifest' | 'index', string, number][] = [
    ['docker manifest list', dockerManifestList, undefined, 'index', MediaType.DOCKER_MANIFEST_LIST, 7],
    ['OCI index with attestations', ociIndexWithAttestations, MediaType.OCI_INDEX, 'index', MediaType.OCI_INDEX, 4],
    ['docker schema2 manifest', dockerManifest, MediaType.DOCKER_MANIFEST, 'manifest', MediaType.DOCKER_MANIFEST, 1],
    ['OCI manifest', ociManifest, undefined, 'manifest', MediaType.OCI_MANIFEST, 3],
    ['OCI manifest without mediaType, header says so', patched(ociManifest, (d) => delete d.mediaType), MediaType.OCI_MANIFEST, 'manifest', MediaType.OCI_MANIFEST, 3],
    ['OCI manifest without mediaType, header with parameters', patched(ociManifest, (d) => delete d.mediaType), `${MediaType.DOCKER_MANIFEST}; charset=utf-8`, 'manifest', MediaType.DOCKER_MANIFEST, 3],
    ['OCI index without mediaType, sniffed', patched(ociIndexWithAttestations, (d) => delete d.mediaType), 'application/json', 'index', MediaType.OCI_INDEX, 4],
    ['OCI manifest without mediaType, sniffed', patched(ociManifest, (d) => delete d.mediaType), undefined, 'manifest', MediaType.OCI_MANIFEST, 3],
    ['manifest with no layers (artifact)', patched(ociManifest, (d) => { d.layers = []; d.artifactType = 'application/x'; }), undefined, 'manifest', MediaType.OCI_MANIFEST, 0],
    ['empty index', { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [] }, undefined, 'index', MediaType.OCI_INDEX, 0],
  ];
  for (const [name, body, header, kind, mediaType, count] of cases) {
    it(name, () => {
      const doc = parseManifestDocument(buf(body), header);
      assert.equal(doc.kind, kind);
      if (doc.kind === 'index') {
        assert.equal(doc.index.mediaType, mediaType);
        assert.equal(doc.index.manifests.length, count);
      } else {
        assert.equal(doc.manifest.mediaType, mediaType);
        assert.equal(doc.manifest.layers.length, count);
      }
    });
  }

  it('keeps descriptor details and normalises index platforms', () => {
    const doc = parseManifestDocument(buf(ociManifest));
    assert.equal(doc.kind, 'manifest');
    if (doc.kind !== 'manifest') return;
    assert.deepEqual(doc.manifest.config, ociManifest.config);
    assert.deepEqual(doc.manifest.layers[2]!.urls, ['https://example.com/layer.tar.gz']);
    assert.equal(doc.manifest.subject?.digest, h('6'));
    assert.deepEqual(doc.manifest.annotations, { 'com.example.key1': 'value1' });

    const idx = parseManifestDocument(buf(patched(dockerManifestList, (d) => {
      d.manifests[0].platform = { architecture: 'x86_64', os: 'linux', 'os.version': '1' };
    })));
    assert.equal(idx.kind, 'index');
    if (idx.kind !== 'index') return;
    assert.deepEqual(idx.index.manifests[0]!.platform, { os: 'linux', architecture: 'amd64', osVersion: '1' });
    assert.deepEqual(idx.index.manifests[3]!.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  });
});

describe('parseManifestDocument: refused documents', () => {
  // [name, body (object or raw string), header, code, message fragment]
  const cases: [string, unknown, string | undefined, string, string][] = [
    ['schema 1 by schemaVersion', schema1Signed, undefined, 'ERR_UNSUPPORTED_SCHEMA1', 'deprecated format'],
    ['schema 1 by header', schema1Signed, MediaType.DOCKER_SCHEMA1_SIGNED, 'ERR_UNSUPPORTED_SCHEMA1', 'schema 1'],
    ['schema 1 by mediaType', { ...schema1Signed, mediaType: MediaType.DOCKER_SCHEMA1_MANIFEST }, undefined, 'ERR_UNSUPPORTED_SCHEMA1', 'schema 1'],
    ['not JSON', '{"schemaVersion": 2,', undefined, 'ERR_INVALID_MANIFEST', 'not valid JSON'],
    ['JSON array', '[]', undefined, 'ERR_INVALID_MANIFEST', 'JSON object'],
    ['JSON null', 'null', undefined, 'ERR_INVALID_MANIFEST', 'JSON object'],
    ['schemaVersion 3', patched(dockerManifest, (d) => { d.schemaVersion = 3; }), undefined, 'ERR_INVALID_MANIFEST', 'schemaVersion must be 2'],
    ['schemaVersion missing', patched(dockerManifest, (d) => { delete d.schemaVersion; }), undefined, 'ERR_INVALID_MANIFEST', 'schemaVersion must be 2'],
    ['unknown media type', patched(dockerManifest, (d) => { d.mediaType = 'application/vnd.example+json'; }), undefined, 'ERR_INVALID_MANIFEST', 'unsupported media type'],
    ['header and body disagree', dockerManifest, MediaType.OCI_INDEX, 'ERR_INVALID_MANIFEST', 'Content-Type says'],
    ['ambiguous shape', patched(dockerManifest, (d) => { d.manifests = []; }), undefined, 'ERR_INVALID_MANIFEST', 'ambiguous'],
    ['unrecognisable', { schemaVersion: 2 }, undefined, 'ERR_INVALID_MANIFEST', 'cannot tell'],
    ['layers not an array', patched(dockerManifest, (d) => { d.layers = {}; }), undefined, 'ERR_INVALID_MANIFEST', '"layers" must be an array'],
    ['no config', patched(dockerManifest, (d) => { delete d.config; }), undefined, 'ERR_INVALID_MANIFEST', 'manifest.config'],
    ['manifests not an array', patched(dockerManifestList, (d) => { d.manifests = 'x'; }), undefined, 'ERR_INVALID_MANIFEST', '"manifests" must be an array'],
    ['bad layer digest', patched(dockerManifest, (d) => { d.layers[0].digest = 'sha256:xyz'; }), undefined, 'ERR_INVALID_MANIFEST', 'layers[0]'],
    ['path-like digest', patched(dockerManifest, (d) => { d.config.digest = 'sha256:../../etc/passwd'; }), undefined, 'ERR_INVALID_MANIFEST', 'invalid digest'],
    ['missing digest', patched(dockerManifest, (d) => { delete d.layers[0].digest; }), undefined, 'ERR_INVALID_MANIFEST', 'no digest'],
    ['negative size', patched(dockerManifest, (d) => { d.layers[0].size = -1; }), undefined, 'ERR_INVALID_MANIFEST', 'non-negative integer'],
    ['fractional size', patched(dockerManifest, (d) => { d.layers[0].size = 1.5; }), undefined, 'ERR_INVALID_MANIFEST', 'non-negative integer'],
    ['string size', patched(dockerManifest, (d) => { d.layers[0].size = '12'; }), undefined, 'ERR_INVALID_MANIFEST', 'non-negative integer'],
    ['huge size', patched(dockerManifest, (d) => { d.layers[0].size = 2 ** 60; }), undefined, 'ERR_INVALID_MANIFEST', 'non-negative integer'],
    ['missing mediaType in descriptor', patched(dockerManifest, (d) => { delete d.layers[0].mediaType; }), undefined, 'ERR_INVALID_MANIFEST', 'no mediaType'],
    ['urls not strings', patched(ociManifest, (d) => { d.layers[0].urls = [1]; }), undefined, 'ERR_INVALID_MANIFEST', '"urls"'],
    ['annotations not strings', patched(ociManifest, (d) => { d.annotations = { a: 1 }; }), undefined, 'ERR_INVALID_MANIFEST', '"annotations"'],
    ['platform without os', patched(dockerManifestList, (d) => { delete d.manifests[0].platform.os; }), undefined, 'ERR_INVALID_MANIFEST', 'platform'],
    ['platform not an object', patched(dockerManifestList, (d) => { d.manifests[0].platform = 'linux/amd64'; }), undefined, 'ERR_INVALID_MANIFEST', 'platform'],
  ];
  for (const [name, body, header, code, message] of cases) {
    it(name, () => {
      assert.throws(
        () => parseManifestDocument(buf(body), header),
        (err: unknown) => {
          assert.ok(isVmimgError(err), `not a VmimgError: ${String(err)}`);
          assert.equal(err.code, code, err.message);
          assert.ok(err.message.includes(message), `message "${err.message}" lacks "${message}"`);
          return true;
        },
      );
    });
  }

  it('schema 1 error tells the user to re-push', () => {
    assert.throws(() => parseManifestDocument(buf(schema1Signed)), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_UNSUPPORTED_SCHEMA1'));
      assert.match(err.hint ?? '', /re-push/);
      return true;
    });
  });

  it('refuses a body over MAX_MANIFEST_BYTES', () => {
    assert.equal(MAX_MANIFEST_BYTES, 4 * 1024 * 1024);
    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
    assert.throws(() => parseManifestDocument(big), (err: unknown) => isVmimgError(err, 'ERR_TOO_LARGE'));
  });
});

describe('parseImageConfig', () => {
  it('parses a real-looking alpine config', () => {
    const c = parseImageConfig(buf(alpineConfig));
    assert.equal(c.architecture, 'arm64');
    assert.equal(c.os, 'linux');
    assert.equal(c.variant, 'v8');
    assert.deepEqual(c.config?.Cmd, ['/bin/sh']);
    assert.deepEqual(c.config?.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    assert.equal(c.config?.Labels, undefined);
    assert.equal(c.config?.WorkingDir, '');
    assert.deepEqual(c.rootfs.diff_ids, [h('d')]);
    assert.equal(c.history?.length, 2);
    assert.equal(c.history?.[1]?.empty_layer, true);
  });

  // [name, patch, check]
  const accepted: [string, (d: any) => void, (c: ReturnType<typeof parseImageConfig>) => void][] = [
    ['Entrypoint as a string is a one-element list', (d) => { d.config.Entrypoint = '/entry.sh'; }, (c) => assert.deepEqual(c.config?.Entrypoint, ['/entry.sh'])],
    ['Entrypoint as an array', (d) => { d.config.Entrypoint = ['/bin/tini', '--']; }, (c) => assert.deepEqual(c.config?.Entrypoint, ['/bin/tini', '--'])],
    ['Entrypoint null', (d) => { d.config.Entrypoint = null; }, (c) => assert.equal(c.config?.Entrypoint, undefined)],
    ['Cmd as a string', (d) => { d.config.Cmd = 'echo hi'; }, (c) => assert.deepEqual(c.config?.Cmd, ['echo hi'])],
    ['User, WorkingDir, Labels', (d) => { d.config.User = '1000:1000'; d.config.WorkingDir = '/app'; d.config.Labels = { a: 'b' }; }, (c) => {
      assert.equal(c.config?.User, '1000:1000');
      assert.equal(c.config?.WorkingDir, '/app');
      assert.deepEqual(c.config?.Labels, { a: 'b' });
    }],
    ['no config section', (d) => { delete d.config; }, (c) => assert.equal(c.config, undefined)],
    ['config null', (d) => { d.config = null; }, (c) => assert.equal(c.config, undefined)],
    ['no layers', (d) => { d.rootfs.diff_ids = []; }, (c) => assert.deepEqual(c.rootfs.diff_ids, [])],
    ['no variant', (d) => { delete d.variant; }, (c) => assert.equal(c.variant, undefined)],
  ];
  for (const [name, patch, check] of accepted) {
    it(name, () => check(parseImageConfig(buf(patched(alpineConfig, patch)))));
  }

  const refused: [string, (d: any) => void, string][] = [
    ['no architecture', (d) => { delete d.architecture; }, '"architecture"'],
    ['no os', (d) => { delete d.os; }, '"os"'],
    ['no rootfs', (d) => { delete d.rootfs; }, '"rootfs"'],
    ['rootfs type not layers', (d) => { d.rootfs.type = 'tarball'; }, 'type must be "layers"'],
    ['diff_ids not an array', (d) => { d.rootfs.diff_ids = h('1'); }, '"diff_ids" must be an array'],
    ['bad diff_id', (d) => { d.rootfs.diff_ids = ['sha256:nothex']; }, 'diff_ids[0]'],
    ['diff_id not a string', (d) => { d.rootfs.diff_ids = [1]; }, 'diff_ids[0]'],
    ['Env not strings', (d) => { d.config.Env = [1]; }, '"Env"'],
    ['Entrypoint a number', (d) => { d.config.Entrypoint = 5; }, '"Entrypoint"'],
    ['Cmd with a number', (d) => { d.config.Cmd = ['a', 1]; }, '"Cmd"'],
    ['Labels not strings', (d) => { d.config.Labels = { a: 1 }; }, '"Labels"'],
    ['User not a string', (d) => { d.config.User = 0; }, '"User"'],
    ['history not an array', (d) => { d.history = {}; }, '"history"'],
    ['empty_layer not boolean', (d) => { d.history[0].empty_layer = 'yes'; }, 'empty_layer'],
  ];
  for (const [name, patch, message] of refused) {
    it(`refuses: ${name}`, () => {
      assert.throws(
        () => parseImageConfig(buf(patched(alpineConfig, patch))),
        (err: unknown) => {
          assert.ok(isVmimgError(err, 'ERR_INVALID_MANIFEST'), `wrong error: ${String(err)}`);
          assert.ok(err.message.includes(message), `message "${err.message}" lacks "${message}"`);
          return true;
        },
      );
    });
  }
  it('refuses non-JSON', () => {
    assert.throws(() => parseImageConfig(buf('nope')), (err: unknown) => isVmimgError(err, 'ERR_INVALID_MANIFEST'));
  });
});
