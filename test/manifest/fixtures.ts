/** Real-looking manifests, indexes and configs (shapes copied from Docker Hub / OCI spec examples). */

export const h = (c: string): string => `sha256:${c.repeat(64).slice(0, 64)}`;

export const dockerManifestList = {
  manifests: [
    { digest: h('1'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: 'amd64', os: 'linux' }, size: 528 },
    { digest: h('2'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: 'arm', os: 'linux', variant: 'v6' }, size: 528 },
    { digest: h('3'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: 'arm', os: 'linux', variant: 'v7' }, size: 528 },
    { digest: h('4'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: 'arm64', os: 'linux', variant: 'v8' }, size: 528 },
    { digest: h('5'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: '386', os: 'linux' }, size: 528 },
    { digest: h('6'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: 'ppc64le', os: 'linux' }, size: 528 },
    { digest: h('7'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json', platform: { architecture: 's390x', os: 'linux' }, size: 528 },
  ],
  mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
  schemaVersion: 2,
};

/** BuildKit-style OCI index with attestation manifests. */
export const ociIndexWithAttestations = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: h('a'), size: 1022, platform: { architecture: 'amd64', os: 'linux' } },
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: h('b'), size: 1022, platform: { architecture: 'arm64', os: 'linux' } },
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: h('c'),
      size: 566,
      annotations: { 'vnd.docker.reference.digest': h('a'), 'vnd.docker.reference.type': 'attestation-manifest' },
      platform: { architecture: 'unknown', os: 'unknown' },
    },
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: h('d'),
      size: 566,
      annotations: { 'vnd.docker.reference.digest': h('b'), 'vnd.docker.reference.type': 'attestation-manifest' },
      platform: { architecture: 'unknown', os: 'unknown' },
    },
  ],
  annotations: { 'org.opencontainers.image.created': '2024-05-01T00:00:00Z' },
};

export const dockerManifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
  config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 1472, digest: h('e') },
  layers: [
    { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 3408729, digest: h('f') },
  ],
};

/** From the OCI image-spec manifest example (with a nondistributable layer carrying urls). */
export const ociManifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: h('0'), size: 7023 },
  layers: [
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: h('9'), size: 32654 },
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: h('8'), size: 16724 },
    {
      mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      digest: h('7'),
      size: 73109,
      urls: ['https://example.com/layer.tar.gz'],
    },
  ],
  subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: h('6'), size: 7682 },
  annotations: { 'com.example.key1': 'value1' },
};

/** Docker schema 1 signed manifest (abridged). */
export const schema1Signed = {
  schemaVersion: 1,
  name: 'library/hello-world',
  tag: 'latest',
  architecture: 'amd64',
  fsLayers: [{ blobSum: h('a') }],
  history: [{ v1Compatibility: '{"id":"x"}' }],
  signatures: [{ header: { jwk: { crv: 'P-256', kty: 'EC' }, alg: 'ES256' }, signature: 'xx', protected: 'yy' }],
};

/** An alpine image config as Docker Hub serves it. */
export const alpineConfig = {
  architecture: 'arm64',
  config: {
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['/bin/sh'],
    WorkingDir: '',
    Labels: null,
    ArgsEscaped: true,
    OnBuild: null,
  },
  created: '2024-01-27T00:30:56.150923687Z',
  history: [
    { created: '2024-01-27T00:30:56.03249627Z', created_by: '/bin/sh -c #(nop) ADD file:d0764a in / ' },
    { created: '2024-01-27T00:30:56.150923687Z', created_by: '/bin/sh -c #(nop)  CMD ["/bin/sh"]', empty_layer: true },
  ],
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [h('d')] },
  variant: 'v8',
};

export const buf = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

/** A deep copy with `patch` applied to it. */
export function patched<T>(doc: T, patch: (d: any) => void): T {
  const copy = structuredClone(doc);
  patch(copy);
  return copy;
}
