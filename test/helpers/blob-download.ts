// A blob fetched the way a pull fetches it: the client opens ranges, the store's fetch resumes,
// retries and verifies (into a throwaway store). For tests of the client and the fault proxy.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Descriptor } from '../../src/manifest/types.js';
import type { RegistryClient, RepositoryRef } from '../../src/registry/index.js';
import { BlobStore, type FetchOptions } from '../../src/store/index.js';

export async function downloadBlob(client: RegistryClient, repo: RepositoryRef, desc: Descriptor, options: FetchOptions = {}): Promise<Buffer> {
  const root = await mkdtemp(join(tmpdir(), 'vmimg-blob-'));
  try {
    const store = new BlobStore(root);
    const open = (offset: number, signal?: AbortSignal) => client.openBlob(repo, desc, { offset, ...(signal ? { signal } : {}) });
    const res = await store.fetchInto(desc, open, { retry: client.retryPolicy, throughput: client.throughputRule, ...options });
    return await readFile(res.path);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
