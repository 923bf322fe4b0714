import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { MediaType, checkConfigPlatform, parseImageConfig, type Descriptor } from '../../src/manifest/index.js';
import { chooseImage, type BlobReader } from '../../src/content/index.js';
import { formatPlatform, parsePlatform } from '../../src/platform/index.js';
import { isVmimgError } from '../../src/errors.js';
import { alpineConfig, buf, dockerManifestList, h, ociIndexWithAttestations, patched } from './fixtures.js';

/** Nested indexes: an unlabelled one (amd64 and arm64 inside) and one labelled riscv64. */
const nested = {
  schemaVersion: 2,
  mediaType: MediaType.OCI_INDEX,
  manifests: [
    { mediaType: MediaType.OCI_INDEX, digest: h('d'), size: 400 },
    { mediaType: MediaType.OCI_INDEX, digest: h('e'), size: 400, platform: { os: 'linux', architecture: 'riscv64' } },
    { mediaType: 'application/vnd.example.sbom+json', digest: h('3'), size: 10, platform: { os: 'linux', architecture: 'arm64' } },
  ],
};
const inner: Record<string, unknown> = {
  [h('d')]: {
    schemaVersion: 2,
    mediaType: MediaType.OCI_INDEX,
    manifests: [
      { mediaType: MediaType.OCI_MANIFEST, digest: h('6'), size: 400, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.OCI_MANIFEST, digest: h('8'), size: 400, platform: { os: 'linux', architecture: 'arm64' } },
    ],
  },
  [h('e')]: { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [{ mediaType: MediaType.OCI_MANIFEST, digest: h('7'), size: 400, platform: { os: 'linux', architecture: 'riscv64' } }] },
};

const noPlatform = {
  schemaVersion: 2,
  mediaType: MediaType.OCI_INDEX,
  manifests: [{ mediaType: MediaType.OCI_MANIFEST, digest: h('5'), size: 400 }],
};

/**
 * A registry-like source holding `doc` as its root (platforms come from index entries, as from a
 * registry); every manifest it is asked for names one amd64 config.
 */
function source(doc: unknown): BlobReader {
  const config = buf(patched(alpineConfig, (d) => { d.architecture = 'amd64'; delete d.variant; }));
  const configDesc = { mediaType: MediaType.OCI_CONFIG, digest: h('c'), size: config.length };
  const bytes = (desc: Descriptor): Buffer => {
    if (desc.digest === h('0')) return buf(doc);
    if (inner[desc.digest] !== undefined) return buf(inner[desc.digest]);
    if (desc.digest === h('c')) return config;
    const docker = desc.mediaType === MediaType.DOCKER_MANIFEST;
    return buf({ schemaVersion: 2, mediaType: desc.mediaType, config: { ...configDesc, mediaType: docker ? MediaType.DOCKER_CONFIG : MediaType.OCI_CONFIG }, layers: [] });
  };
  return {
    kind: 'registry',
    where: 'test',
    roots: async () => [{ descriptor: { mediaType: MediaType.OCI_INDEX, digest: h('0'), size: buf(doc).length }, names: [] }],
    readBytes: async (desc: Descriptor) => bytes(desc),
    open: async () => Readable.from([]),
    openRange: async () => ({ stream: Readable.from([]), offset: 0, from: 'test' }),
    close: async () => undefined,
  } as BlobReader;
}

describe('platform choice in the index walk (src/content/walk.ts)', () => {
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
    ['nested index: a labelled nested index is walked', nested, 'linux/riscv64', h('7')],
    ['nested index: an unlabelled nested index is walked', nested, 'linux/amd64', h('6')],
    ['non-manifest media types are ignored', nested, 'linux/arm64', h('8')],
    ['an entry without platform takes its config’s', noPlatform, 'linux/amd64', h('5')],
  ];
  for (const [name, doc, wanted, digest] of cases) {
    it(name, async () => assert.equal((await chooseImage(source(doc), { platform: parsePlatform(wanted) })).manifest.descriptor.digest, digest));
  }

  const mismatches: [string, unknown, string, string[]][] = [
    ['docker list has no riscv64', dockerManifestList, 'linux/riscv64',
      ['linux/amd64', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm64/v8', 'linux/386', 'linux/ppc64le', 'linux/s390x']],
    ['attestations are not listed', ociIndexWithAttestations, 'linux/s390x', ['linux/amd64', 'linux/arm64/v8']],
    ['arm/v5 does not take v6/v7', patched(dockerManifestList, (d) => d.manifests.splice(3)), 'linux/arm/v5', ['linux/amd64', 'linux/arm/v6', 'linux/arm/v7']],
    ['an entry without platform is its config’s (amd64) only', noPlatform, 'linux/arm64', ['linux/amd64']],
  ];
  for (const [name, doc, wanted, available] of mismatches) {
    it(`mismatch: ${name}`, async () => {
      await assert.rejects(chooseImage(source(doc), { platform: parsePlatform(wanted), explicitPlatform: true }), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_PLATFORM_MISMATCH'), `wrong error: ${String(err)}`);
        const want = formatPlatform(parsePlatform(wanted));
        assert.ok(err.message.includes(want), `message "${err.message}" does not name ${want}`);
        for (const p of available) assert.ok(err.message.includes(p), `message "${err.message}" does not list ${p}`);
        assert.ok(!err.message.includes('unknown'), 'attestation platforms must not be listed');
        return true;
      });
    });
  }

  it('an empty index holds no image', async () => {
    await assert.rejects(chooseImage(source({ schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [] })), { code: 'ERR_NOT_FOUND' });
  });
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
