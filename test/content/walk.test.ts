/**
 * The index walk's bounds, against a source a hostile registry could be: a BlobReader that makes up an
 * index for every digest it is asked about (each listing 1 000 new ones), and a chain of indexes nested
 * deeper than MAX_INDEX_DEPTH. Both are refused with a coded error, quickly, without recursion.
 * (A reader in memory is the point: any BlobReader is a source, so the walk must not trust one.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { ErrorCode, isVmimgError } from '../../src/index.js';
import { MAX_INDEX_DEPTH, MAX_WALK_DOCUMENTS, MAX_WALK_ENTRIES, chooseImage, listImageEntries, type BlobReader } from '../../src/content/index.js';
import type { Descriptor } from '../../src/manifest/types.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Every index lists `fanOut` children named after it: indexes down to `depth` levels, then manifests (never served). */
function endlessIndexes(fanOut: number, depth: number): BlobReader & { reads: number } {
  const docs = new Map<string, { level: number; name: string }>();
  let made = 0; // digests are only names here: a counter is cheaper than hashing 100 000 of them
  const descriptor = (name: string, level: number): Descriptor => {
    const digest = `sha256:${(made++).toString(16).padStart(64, '0')}`;
    docs.set(digest, { level, name });
    return { mediaType: level < depth ? OCI_INDEX : OCI_MANIFEST, digest, size: 0, platform: { os: 'linux', architecture: 'amd64' } };
  };
  const root = descriptor('root', 0);
  const reader = {
    kind: 'oci-layout' as const,
    where: 'endless',
    reads: 0,
    roots: async () => [{ descriptor: root, names: ['endless'] }],
    readBytes: async (desc: Descriptor) => {
      reader.reads++;
      const at = docs.get(desc.digest)!;
      if (at.level >= depth) throw new Error('a manifest was read');
      const manifests = Array.from({ length: fanOut }, (_, i) => descriptor(`${at.name}/${i}`, at.level + 1));
      return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
    },
    open: async () => Readable.from([]),
    close: async () => undefined,
  };
  return reader;
}

describe('the index walk is bounded', () => {
  it(`indexes listing ever more indexes stop at MAX_WALK_DOCUMENTS (${MAX_WALK_DOCUMENTS}) reads with ERR_TOO_LARGE`, async () => {
    const reader = endlessIndexes(40, 3); // 1 641 indexes and 64 000 manifests if walked
    await assert.rejects(listImageEntries(reader, { readAll: false }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.TOO_LARGE), String(err));
      assert.match(err.message, /maxWalkDocuments/);
      return true;
    });
    assert.equal(reader.reads, MAX_WALK_DOCUMENTS);
  });

  it(`indexes of 20 000 entries each (under the 4 MiB cap) stop at MAX_WALK_ENTRIES (${MAX_WALK_ENTRIES}) with ERR_TOO_LARGE`, async () => {
    const reader = endlessIndexes(20_000, 2); // 400 million entries if walked
    await assert.rejects(listImageEntries(reader, { readAll: false }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.TOO_LARGE), String(err));
      assert.match(err.message, /maxWalkEntries/);
      return true;
    });
    assert.ok(reader.reads < 10, `${reader.reads} indexes read`);
  });

  it(`indexes nested deeper than MAX_INDEX_DEPTH (${MAX_INDEX_DEPTH}) are ERR_INVALID_MANIFEST`, async () => {
    await assert.rejects(chooseImage(endlessIndexes(1, MAX_INDEX_DEPTH + 3)), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.INVALID_MANIFEST), String(err));
      assert.match(err.message, /nested too deeply/);
      return true;
    });
  });

});
