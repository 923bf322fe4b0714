/**
 * A RangeSource over a registry blob (src/lazy/lazy-content.ts): one bounded Range GET per call through
 * the registry client (auth, mirrors, redirects). The client checks that a 206 starts where asked;
 * this checks that exactly the asked bytes come. A 200 (Range ignored) hands the whole body over.
 */
import type { Descriptor } from '../manifest/types.js';
import type { RegistryClient, RepositoryRef } from '../registry/client.js';
import { ErrorCode, VmimgError } from '../errors.js';
import type { RangeAnswer, RangeSource } from './lazy-content.js';

/** Ranges of `desc` in `repo` through `client` (errors: the client's coded ones; ERR_REGISTRY_ERROR for a wrong byte count). */
export function registryRangeSource(client: RegistryClient, repo: RepositoryRef, desc: Descriptor, signal?: AbortSignal): RangeSource {
  return {
    async read(start: number, end: number): Promise<RangeAnswer> {
      const want = Math.min(end, desc.size) - start;
      const opened = await client.openBlob(repo, desc, { offset: start, length: want, ...(signal ? { signal } : {}) });
      const whole = opened.offset === 0 && start === 0 && opened.length === desc.size && want !== desc.size;
      if ((opened.offset === 0 && start > 0) || whole) return { kind: 'whole', stream: opened.stream };
      const parts: Buffer[] = [];
      let got = 0;
      for await (const chunk of opened.stream) {
        got += (chunk as Buffer).length;
        if (got > want) {
          opened.stream.destroy();
          throw new VmimgError(ErrorCode.REGISTRY_ERROR, `blob ${desc.digest}: asked for bytes ${start}-${start + want - 1}, the server sent more`);
        }
        parts.push(chunk as Buffer);
      }
      if (got !== want) throw new VmimgError(ErrorCode.REGISTRY_ERROR, `blob ${desc.digest}: asked for ${want} bytes from ${start}, got ${got}`);
      return { kind: 'range', bytes: Buffer.concat(parts) };
    },
  };
}
