/**
 * Tag → manifest digest, per upstream and repository, with a TTL (default 5 min). Entries are kept
 * in `<cache>/serve/tags.json` so a restarted server still has a last known digest to serve when
 * the upstream is down (stale-if-error). Digests are immutable and need no such table.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** What a tag pointed at when last checked. */
export interface TagEntry {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** When the upstream last confirmed it (ms since the epoch). */
  readonly checked: number;
}

/** Entries kept at most (oldest dropped first), so a client walking many tags cannot grow it without end. */
export const MAX_TAG_ENTRIES = 100_000;

export class TagTable {
  private readonly entries = new Map<string, TagEntry>();
  private saving: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(
    private readonly file: string,
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    /** A save that failed (a full disk): the table in memory is intact, the file keeps its last state. */
    private readonly onSaveError?: (err: unknown) => void,
  ) {}

  /** Loads the saved table; a missing or damaged file is an empty table. */
  async load(): Promise<void> {
    try {
      const doc = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, TagEntry>;
      for (const [k, v] of Object.entries(doc)) {
        if (typeof v?.digest === 'string' && typeof v.mediaType === 'string' && typeof v.size === 'number') this.entries.set(k, v);
      }
    } catch {
      // nothing saved yet, or a damaged file: start empty (it is only a cache of upstream answers)
    }
  }

  get(key: string): TagEntry | undefined {
    return this.entries.get(key);
  }

  /** True while an entry is within its TTL. */
  fresh(entry: TagEntry): boolean {
    return this.now() - entry.checked < this.ttlMs;
  }

  set(key: string, entry: Omit<TagEntry, 'checked'>): TagEntry {
    const full = { ...entry, checked: this.now() };
    this.entries.delete(key);
    this.entries.set(key, full);
    if (this.entries.size > MAX_TAG_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    this.save();
    return full;
  }

  /** Writes the table (one write at a time; the last state wins). */
  private save(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.saving = this.saving.then(async () => {
      this.dirty = false;
      const tmp = `${this.file}.tmp-${process.pid}`;
      try {
        await mkdir(dirname(this.file), { recursive: true });
        await writeFile(tmp, JSON.stringify(Object.fromEntries(this.entries)));
        await rename(tmp, this.file);
      } catch (err) {
        // losing the saved table costs a revalidation after a restart, nothing more; no temporary file stays
        await rm(tmp, { force: true }).catch(() => undefined);
        this.onSaveError?.(err);
      }
    });
  }

  /** Resolves once pending writes are done. */
  flush(): Promise<void> {
    return this.saving;
  }
}
