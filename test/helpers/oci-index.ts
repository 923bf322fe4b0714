// Write an OCI image index blob into an OCI layout and tag it in index.json,
// the recipe from TESTING-NOTES (umoci has no command for indexes).
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
}

/** Store `json` as a blob in the layout; returns its descriptor parts. */
export function writeJsonBlob(layout: string, json: unknown): { digest: string; size: number } {
  const bytes = Buffer.from(JSON.stringify(json));
  const hex = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(layout, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/**
 * Write an image index over `manifests` into `layout` and point `tag` at it
 * (replacing any earlier entry with that tag). Returns the index digest.
 */
export function writeIndexIntoLayout(
  layout: string,
  tag: string,
  manifests: IndexEntry[],
  annotations?: Record<string, string>,
): string {
  const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests, ...(annotations ? { annotations } : {}) };
  const blob = writeJsonBlob(layout, index);
  const path = join(layout, 'index.json');
  const top = JSON.parse(readFileSync(path, 'utf8')) as { manifests: IndexEntry[] };
  top.manifests = top.manifests.filter((m) => m.annotations?.[REF_NAME] !== tag);
  top.manifests.push({ mediaType: OCI_INDEX, ...blob, annotations: { [REF_NAME]: tag } });
  writeFileSync(`${path}.tmp`, JSON.stringify(top));
  renameSync(`${path}.tmp`, path);
  return blob.digest;
}

/**
 * A BuildKit-style attestation manifest for `subject` (platform unknown/unknown,
 * one in-toto JSON layer), as `docker buildx` adds to image indexes.
 */
export function writeAttestationManifest(layout: string, subject: string): IndexEntry {
  const statement = {
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://spdx.dev/Document',
    subject: [{ name: 'vmimg-test', digest: { sha256: subject.replace(/^sha256:/, '') } }],
    predicate: { spdxVersion: 'SPDX-2.3', name: 'vmimg-test-sbom' },
  };
  const layer = writeJsonBlob(layout, statement);
  const config = writeJsonBlob(layout, {
    architecture: 'unknown',
    os: 'unknown',
    config: {},
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  });
  const manifest = writeJsonBlob(layout, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{
      mediaType: 'application/vnd.in-toto+json',
      ...layer,
      annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' },
    }],
  });
  return {
    mediaType: OCI_MANIFEST,
    ...manifest,
    platform: { architecture: 'unknown', os: 'unknown' },
    annotations: { 'vnd.docker.reference.digest': subject, 'vnd.docker.reference.type': 'attestation-manifest' },
  };
}
