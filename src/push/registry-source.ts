/**
 * A registry reference as a PushSource, through the RegistryClient: the manifest or index as the
 * registry serves it (bytes unchanged), children and configs by digest (verified), blobs as range
 * GETs. Kept until the seam's registry blob reader replaces it.
 */
import { Readable } from 'node:stream';
import { isIndexMediaType, isManifestMediaType } from '../manifest/media-types.js';
import type { Descriptor } from '../manifest/types.js';
import type { Reference } from '../reference/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { PushSource, RootManifest } from './types.js';

/** Resolves `ref` and returns a PushSource over it (the client stays the caller's to close). */
export async function registrySource(client: RegistryClient, ref: Reference, signal?: AbortSignal): Promise<PushSource> {
  const m = await client.fetchManifest(ref, signal ? { signal } : {});
  const root: RootManifest = { descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.size }, bytes: m.bytes };
  return {
    root,
    origin: { registry: ref.registry, repository: ref.repository },
    async readBytes(desc: Descriptor, sig?: AbortSignal): Promise<Buffer> {
      const options = sig ? { signal: sig } : {};
      if (isManifestMediaType(desc.mediaType) || isIndexMediaType(desc.mediaType)) {
        const { tag: _tag, ...byDigest } = ref;
        return (await client.fetchManifest({ ...byDigest, digest: desc.digest }, options)).bytes;
      }
      return client.fetchBlobBytes(ref, desc, options);
    },
    async open(desc: Descriptor, offset: number, sig?: AbortSignal): Promise<Readable> {
      const opened = await client.openBlob(ref, desc, { offset, ...(sig ? { signal: sig } : {}) });
      return opened.offset === offset ? opened.stream : skip(opened.stream, offset - opened.offset);
    },
  };
}

/** A server that ignored Range sent the blob from 0: drop the bytes before the asked offset. */
function skip(stream: Readable, bytes: number): Readable {
  let left = bytes;
  async function* rest(): AsyncGenerator<Buffer> {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (left >= chunk.length) {
        left -= chunk.length;
        continue;
      }
      yield left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
    }
  }
  return Readable.from(rest(), { objectMode: false });
}
