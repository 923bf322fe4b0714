/**
 * Manifests answered before their commit (manifests.ts `keep`): each is served from memory until its
 * lease write and the store's commit end. Bounded in bytes: a commit can wait long (a prune holds the GC
 * lock), and its answer is already sent, so a client could otherwise fetch manifest after manifest
 * into memory. Past MAX_COMMITTING_BYTES a miss is answered only once its own commit ended, as every
 * miss was before (and each of those waits holds a connection: `--max-connections` bounds them).
 */
import type { ServedManifest } from './state.js';

/** Bytes of manifests answered and not yet committed, at most (a manifest is at most 4 MiB by default). */
export const MAX_COMMITTING_BYTES = 32 << 20;

/** The manifests whose commit runs, by digest, with each commit's promise (which never rejects). */
export class PendingCommits {
  private readonly manifests = new Map<string, ServedManifest>();
  private readonly commits = new Map<string, Promise<void>>();
  private bytes = 0;

  constructor(private readonly maxBytes = MAX_COMMITTING_BYTES) {}

  /** The manifest while its commit runs. */
  get(digest: string): ServedManifest | undefined {
    return this.manifests.get(digest);
  }

  /** Resolves once the manifest's commit (if one runs) ended, stored or not. */
  async committed(digest: string): Promise<void> {
    await this.commits.get(digest);
  }

  /** Resolves once every commit running now ended. */
  async idle(): Promise<void> {
    await Promise.all(this.commits.values());
  }

  /**
   * Runs `commit` for `m` (not again while one runs); its failure goes to `failed`. Resolves at once
   * while the manifests committing fit in the bound, else once this commit ended.
   */
  start(m: ServedManifest, commit: () => Promise<void>, failed: (err: unknown) => void): Promise<void> {
    const running = this.commits.get(m.digest);
    if (running !== undefined) return Promise.resolve();
    const over = this.bytes + m.bytes.length > this.maxBytes;
    this.manifests.set(m.digest, m);
    this.bytes += m.bytes.length;
    const done = commit()
      .catch(failed)
      .finally(() => {
        this.manifests.delete(m.digest);
        this.commits.delete(m.digest);
        this.bytes -= m.bytes.length;
      });
    this.commits.set(m.digest, done);
    return over ? done : Promise.resolve();
  }
}
