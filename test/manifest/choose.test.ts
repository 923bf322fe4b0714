import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MediaType,
  checkConfigPlatform,
  choosePlatformManifest,
  offeredPlatforms,
  parseImageConfig,
  parseManifestDocument,
  type ImageIndex,
} from '../../src/manifest/index.js';
import { formatPlatform, parsePlatform } from '../../src/platform/index.js';
import { isVmimgError } from '../../src/errors.js';
import { alpineConfig, buf, dockerManifestList, h, ociIndexWithAttestations, patched } from './fixtures.js';

function index(doc: unknown): ImageIndex {
  const parsed = parseManifestDocument(buf(doc));
  assert.equal(parsed.kind, 'index');
  return (parsed as { kind: 'index'; index: ImageIndex }).index;
}

const nested = {
  schemaVersion: 2,
  mediaType: MediaType.OCI_INDEX,
  manifests: [
    { mediaType: MediaType.OCI_INDEX, digest: h('1'), size: 400 },
    { mediaType: MediaType.OCI_INDEX, digest: h('2'), size: 400, platform: { os: 'linux', architecture: 'riscv64' } },
    { mediaType: 'application/vnd.example.sbom+json', digest: h('3'), size: 10, platform: { os: 'linux', architecture: 'arm64' } },
  ],
};

const noPlatform = {
  schemaVersion: 2,
  mediaType: MediaType.OCI_INDEX,
  manifests: [{ mediaType: MediaType.OCI_MANIFEST, digest: h('5'), size: 400 }],
};

describe('choosePlatformManifest', () => {
  // [name, index doc, wanted, expected digest]
  const cases: [string, unknown, string, string][] = [
    ['docker list: amd64', dockerManifestList, 'linux/amd64', h('1')],
    ['docker list: arm64 = arm64/v8', dockerManifestList, 'linux/arm64', h('4')],
    ['docker list: aarch64', dockerManifestList, 'aarch64', h('4')],
    ['docker list: arm/v7 exact', dockerManifestList, 'linux/arm/v7', h('3')],
    ['docker list: armel -> v6', dockerManifestList, 'armel', h('2')],
    ['docker list: 386', dockerManifestList, 'i386', h('5')],
    ['docker list: amd64/v3 falls back to amd64', dockerManifestList, 'linux/amd64/v3', h('1')],
    ['docker list: s390x', dockerManifestList, 's390x', h('7')],
    ['arm/v7 takes v6 when v7 is absent', patched(dockerManifestList, (d) => d.manifests.splice(2, 1)), 'linux/arm/v7', h('2')],
    ['BuildKit index: arm64 skips attestations', ociIndexWithAttestations, 'linux/arm64', h('b')],
    ['BuildKit index: amd64', ociIndexWithAttestations, 'linux/amd64', h('a')],
    ['nested index: labelled nested index is returned', nested, 'linux/riscv64', h('2')],
    ['nested index: unlabelled nested index is the fallback', nested, 'linux/amd64', h('1')],
    ['non-manifest media types are ignored', nested, 'linux/arm64', h('1')],
    ['entry without platform counts as linux/amd64', noPlatform, 'linux/amd64', h('5')],
  ];
  for (const [name, doc, wanted, digest] of cases) {
    it(name, () => assert.equal(choosePlatformManifest(index(doc), parsePlatform(wanted)).digest, digest));
  }

  const mismatches: [string, unknown, string, string[]][] = [
    ['docker list has no riscv64', dockerManifestList, 'linux/riscv64',
      ['linux/amd64', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm64/v8', 'linux/386', 'linux/ppc64le', 'linux/s390x']],
    ['attestations are not listed', ociIndexWithAttestations, 'linux/s390x', ['linux/amd64', 'linux/arm64/v8']],
    ['arm/v5 does not take v6/v7', patched(dockerManifestList, (d) => d.manifests.splice(3)), 'linux/arm/v5', ['linux/amd64', 'linux/arm/v6', 'linux/arm/v7']],
    ['unlabelled manifest is amd64 only', noPlatform, 'linux/arm64', ['linux/amd64 (unlabelled)']],
    ['empty index', { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [] }, 'linux/amd64', []],
  ];
  for (const [name, doc, wanted, available] of mismatches) {
    it(`mismatch: ${name}`, () => {
      const idx = index(doc);
      assert.deepEqual(offeredPlatforms(idx), available);
      assert.throws(
        () => choosePlatformManifest(idx, parsePlatform(wanted)),
        (err: unknown) => {
          assert.ok(isVmimgError(err, 'ERR_PLATFORM_MISMATCH'), `wrong error: ${String(err)}`);
          const want = formatPlatform(parsePlatform(wanted));
          assert.ok(err.message.includes(want), `message "${err.message}" does not name ${want}`);
          for (const p of available) assert.ok(err.message.includes(p), `message "${err.message}" does not list ${p}`);
          assert.ok(!err.message.includes('unknown'), 'attestation platforms must not be listed');
          assert.deepEqual(err.details?.available, available);
          assert.equal(err.details?.wanted, want);
          return true;
        },
      );
    });
  }
});

describe('checkConfigPlatform', () => {
  // [config patch, wanted, explicit, expected: true | false | 'throws']
  const cases: [string, (d: any) => void, string, boolean, boolean | 'throws'][] = [
    ['arm64/v8 config, arm64 wanted', () => {}, 'linux/arm64', true, true],
    ['arm64 config without variant, arm64/v8 wanted', (d) => delete d.variant, 'linux/arm64/v8', true, true],
    ['aarch64 config, arm64 wanted', (d) => { d.architecture = 'aarch64'; delete d.variant; }, 'arm64', true, true],
    ['arm64 config, amd64 wanted explicitly', () => {}, 'linux/amd64', true, 'throws'],
    ['arm64 config, amd64 wanted implicitly', () => {}, 'linux/amd64', false, false],
    ['arm/v6 config, arm/v7 wanted', (d) => { d.architecture = 'arm'; d.variant = 'v6'; }, 'linux/arm/v7', true, true],
    ['arm/v7 config, arm/v6 wanted', (d) => { d.architecture = 'arm'; d.variant = 'v7'; }, 'linux/arm/v6', true, 'throws'],
    ['arm config without variant, arm/v6 wanted', (d) => { d.architecture = 'arm'; delete d.variant; }, 'linux/arm/v6', true, true],
    ['windows config, linux wanted', (d) => { d.os = 'windows'; d.architecture = 'amd64'; delete d.variant; }, 'linux/amd64', true, 'throws'],
    ['amd64 config, amd64/v2 wanted', (d) => { d.architecture = 'amd64'; delete d.variant; }, 'linux/amd64/v2', true, true],
  ];
  for (const [name, patch, wanted, explicit, expected] of cases) {
    it(`${name} (${explicit ? 'explicit' : 'implicit'})`, () => {
      const config = parseImageConfig(buf(patched(alpineConfig, patch)));
      const run = () => checkConfigPlatform(config, parsePlatform(wanted), explicit);
      if (expected === 'throws') {
        assert.throws(run, (err: unknown) => {
          assert.ok(isVmimgError(err, 'ERR_PLATFORM_MISMATCH'), `wrong error: ${String(err)}`);
          assert.ok(err.message.includes(wanted), err.message);
          assert.equal((err.details?.available as string[]).length, 1);
          return true;
        });
      } else {
        assert.equal(run(), expected);
      }
    });
  }
});
