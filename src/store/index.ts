/** Content-addressed blob store with verified, atomic writes and resumable, lock-coordinated fetches. */
export { BlobStore, type BlobDescriptor, type BlobInfo, type PutResult } from './blob-store.js';
export type { FetchOptions, FetchResult, OpenedRange, RangeOpener } from './fetch.js';
export { isPidAlive } from './lock.js';
