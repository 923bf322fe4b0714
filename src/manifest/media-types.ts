/** Media types vmimg knows, and predicates over them. */

export const MediaType = {
  // OCI image spec
  OCI_MANIFEST: 'application/vnd.oci.image.manifest.v1+json',
  OCI_INDEX: 'application/vnd.oci.image.index.v1+json',
  OCI_CONFIG: 'application/vnd.oci.image.config.v1+json',
  OCI_LAYER: 'application/vnd.oci.image.layer.v1.tar',
  OCI_LAYER_GZIP: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OCI_LAYER_ZSTD: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OCI_LAYER_NONDISTRIBUTABLE: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OCI_LAYER_NONDISTRIBUTABLE_GZIP: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OCI_LAYER_NONDISTRIBUTABLE_ZSTD: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  OCI_EMPTY: 'application/vnd.oci.empty.v1+json',
  // Docker image manifest v2, schema 2
  DOCKER_MANIFEST: 'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_MANIFEST_LIST: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DOCKER_CONFIG: 'application/vnd.docker.container.image.v1+json',
  DOCKER_LAYER: 'application/vnd.docker.image.rootfs.diff.tar',
  DOCKER_LAYER_GZIP: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DOCKER_LAYER_FOREIGN: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DOCKER_PLUGIN_CONFIG: 'application/vnd.docker.plugin.v1+json',
  // Docker schema 1 (refused)
  DOCKER_SCHEMA1_MANIFEST: 'application/vnd.docker.distribution.manifest.v1+json',
  DOCKER_SCHEMA1_SIGNED: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST];
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST];
export const SCHEMA1_MEDIA_TYPES: readonly string[] = [MediaType.DOCKER_SCHEMA1_MANIFEST, MediaType.DOCKER_SCHEMA1_SIGNED];

/** The `Accept` header a registry client sends for manifests (schema 1 deliberately absent). */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.OCI_INDEX,
  MediaType.DOCKER_MANIFEST_LIST,
  MediaType.OCI_MANIFEST,
  MediaType.DOCKER_MANIFEST,
];

/**
 * Default cap on a manifest or index body (containerd uses 4 MiB too). The cap in force is
 * `documentLimits().maxManifestBytes` (src/manifest/limits.ts: a setting).
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Default cap on an image config body; the cap in force is `documentLimits().maxConfigBytes`. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export function isManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && MANIFEST_MEDIA_TYPES.includes(baseType(mediaType));
}

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && INDEX_MEDIA_TYPES.includes(baseType(mediaType));
}

export function isSchema1MediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && SCHEMA1_MEDIA_TYPES.includes(baseType(mediaType));
}

/** `application/json; charset=utf-8` → `application/json`. */
export function baseType(mediaType: string): string {
  const semi = mediaType.indexOf(';');
  return (semi < 0 ? mediaType : mediaType.slice(0, semi)).trim().toLowerCase();
}
