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
