/**
 * Upload sessions remembered across processes (an UploadJournal, src/registry/upload.ts): after each
 * chunk a registry confirms, the session's URL and offset go to
 * `<cache>/uploads/<key>/<digest hex>.json` (key: sha256 of `registry/repository`, 16 hex digits), so a
 * push killed mid-blob continues the registry's session on the next run instead of sending the blob
 * from byte 0 (distribution answers a GET on the URL with the Range it holds). An entry is removed when
 * its blob completes or its session is abandoned; a registry forgets unfinished sessions after a while
 * (distribution: a week), and then the rerun starts the blob over. `prune` deletes entries older than a
 * week, and all of them with `--partials`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../digest/index.js';
import type { UploadJournal, UploadSession } from '../registry/upload.js';

export class FileUploadJournal implements UploadJournal {
  private readonly dir: string;

  /** Sessions for `registry/repository`, kept below `root` (a cache's `uploadsDir`). */
  constructor(root: string, registry: string, repository: string) {
    this.dir = join(root, createHash('sha256').update(`${registry}/${repository}`).digest('hex').slice(0, 16));
  }

  /** The saved session, or undefined when there is none or the file is not one (never an error). */
  async get(digest: string): Promise<UploadSession | undefined> {
    try {
      const doc = JSON.parse(await readFile(this.path(digest), 'utf8')) as Partial<UploadSession>;
      if (typeof doc.location === 'string' && typeof doc.offset === 'number') return { location: doc.location, offset: doc.offset };
    } catch {
      // absent or damaged: nothing to resume
    }
    return undefined;
  }

  /** Replaces the entry atomically (temp name, rename); readable by the owner only (the URL is a capability). */
  async set(digest: string, session: UploadSession): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = this.path(digest);
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(tmp, JSON.stringify({ location: session.location, offset: session.offset }), { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async delete(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  private path(digest: string): string {
    return join(this.dir, `${digestHex(digest)}.json`);
  }
}
