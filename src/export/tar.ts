/**
 * tar export: the flattened root as one POSIX (pax) tar stream, its headers encoded by tar-stream's
 * header codec (tar-headers.ts) and copied with the bodies into the sink's ring (tar-sink.ts).
 * Names are `./path` like `tar -C root -c .`; shared inodes become hardlinks to their first name;
 * xattrs travel as `SCHILY.xattr.<name>` records (what GNU tar, bsdtar and mkfs.erofs read). Names, link
 * targets and xattr names are written as their original bytes (in PAX records, as GNU tar does).
 */
import type { Writable } from 'node:stream';
import type { ContainerFS } from '../vfs/index.js';
import { isRawName } from '../util/byte-names.js';
import { withFs, type ExportSource } from './source.js';
import { ReadAhead, SLAB, type Body, type Placed } from './read-ahead.js';
import { encodeHeader, type EntryType, type TarHeader } from './tar-headers.js';
import { TarSink, type FileCheck } from './tar-sink.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, splitDev, walkTree, type ExportProgress, type TreeEntry } from './walk.js';

export interface TarOptions {
  signal?: AbortSignal;
  /** gzip level 0-9 for a `.tar.gz`; absent or `false` writes the tar uncompressed. */
  gzip?: number | false;
  /** Check every file's bytes against its index sha256 (default true): ERR_DIGEST_MISMATCH naming the file. */
  verify?: boolean;
  /** Hears each warning (an image entry left out), as it happens; all are in the result too. */
  onWarning?: (message: string) => void;
  /** Hears the progress after each entry (often: throttle what you draw). */
  onProgress?: (progress: ExportProgress) => void;
}

export interface TarResult {
  entries: number;
  /** Image entries left out, and why (docs/EXPORT.md). */
  warnings: string[];
}

const TYPES: Record<number, EntryType> = {
  [S_IFREG]: 'file',
  [S_IFDIR]: 'directory',
  [S_IFLNK]: 'symlink',
  [S_IFCHR]: 'character-device',
  [S_IFBLK]: 'block-device',
  [S_IFIFO]: 'fifo',
};

const MAX_OCTAL_ID = 0o7777777;
/** ustar's name (100) + '/' + prefix (155) fields; a link target has 100 bytes. */
const USTAR_NAME_MAX = 256;
const USTAR_LINK_MAX = 100;

/**
 * Writes the tar to `out` (which is ended). Sockets, which tar cannot hold, are left out. `out` must be
 * done with a chunk when it calls back for it (as file, zlib and socket streams are): the export reuses
 * that memory.
 */
export async function exportTar(source: ExportSource, out: Writable, options: TarOptions = {}): Promise<TarResult> {
  return withFs(source, async (fs) => {
    const ahead = new ReadAhead(fs);
    const sink = new TarSink(out, options.gzip === undefined || options.gzip === false ? undefined : options.gzip, (err) => ahead.fail(err));
    const onAbort = (): void => sink.fail(options.signal!.reason as Error);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let entries = 0;
    let bytes = 0;
    const warnings: string[] = [];
    const warn = (message: string): void => {
      warnings.push(message);
      options.onWarning?.(message);
    };
    const queue = new Queue();
    const w: Writer = { fs, ahead, sink, verify: options.verify ?? true };
    /** Writes the oldest queued entry; a promise only when it must wait (a read, room in the ring). */
    const writeNext = (): Promise<void> | undefined => {
      const next = queue.take();
      const wait = writeEntry(w, next);
      entries++;
      bytes += next.size;
      options.onProgress?.({ entries, bytes });
      return wait;
    };
    try {
      for (const e of walkTree(fs, undefined, warn)) {
        const header = headerFor(fs, e);
        if (!header) continue;
        options.signal?.throwIfAborted();
        const size = header.size;
        queue.push({ e, head: encodeHeader(header), size, placed: size > 0 && size <= SLAB ? ahead.place(e.ino, size) : undefined });
        while (queue.size >= AHEAD_ENTRIES || ahead.full) await writeNext();
      }
      while (queue.size > 0) await writeNext();
      await sink.put(END_OF_ARCHIVE);
      await sink.end();
    } catch (err) {
      // torn down from outside (Ctrl-C, the reader failed): the entry's own error only echoes that cause
      sink.fail(err as Error);
      throw sink.failure;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    return { entries, warnings };
  });
}

function headerFor(fs: ContainerFS, e: TreeEntry): TarHeader | undefined {
  const a = e.attr;
  const fmt = a.mode & S_IFMT;
  let type = TYPES[fmt];
  if (type === undefined) return undefined;
  const name = e.path === '' ? './' : `./${e.path}${fmt === S_IFDIR ? '/' : ''}`;
  const h: TarHeader = {
    name,
    mode: a.mode & 0o7777,
    uid: Math.min(a.uid, MAX_OCTAL_ID),
    gid: Math.min(a.gid, MAX_OCTAL_ID),
    mtime: Math.max(0, a.mtimeSec),
    size: 0,
    type,
  };
  if (e.linkTo !== undefined) {
    type = h.type = 'link';
    h.linkname = `./${e.linkTo}`;
  } else if (fmt === S_IFREG) {
    h.size = a.size;
  } else if (fmt === S_IFLNK) {
    h.linkname = fs.readlink(e.ino);
  } else if (fmt === S_IFCHR || fmt === S_IFBLK) {
    const { major, minor } = splitDev(a.rdev);
    h.devmajor = major;
    h.devminor = minor;
  }
  const pax: [string, Buffer][] = [];
  if (a.uid > MAX_OCTAL_ID) pax.push(['uid', Buffer.from(String(a.uid))]);
  if (a.gid > MAX_OCTAL_ID) pax.push(['gid', Buffer.from(String(a.gid))]);
  const xattrs = fs.listxattr(e.ino);
  if (xattrs.length > 0) for (const x of xattrs.sort()) pax.push([`SCHILY.xattr.${x}`, fs.getxattr(e.ino, x)]);
  // A raw (not UTF-8) link target needs the pax encoder too: tar-stream's ustar one writes it as UTF-8.
  // tar-stream's ustar encoder splits long names into prefix + name with a loop that is quadratic in
  // the name's length (cubic over a deep tree): anything ustar cannot hold goes straight to pax.
  const link = h.linkname ?? '';
  if (pax.length > 0 || Buffer.byteLength(name) > USTAR_NAME_MAX || Buffer.byteLength(link) > USTAR_LINK_MAX || isRawName(link)) h.pax = pax;
  return h;
}

/** Entries queued ahead of the one being written (their small files' reads run meanwhile). */
const AHEAD_ENTRIES = 256;

interface Pending {
  e: TreeEntry;
  /** The header blocks before the body. */
  head: Buffer;
  /** Body bytes (a regular file's size; 0 for every other entry). */
  size: number;
  /** A small file's place in a run of reads. */
  placed: Placed | undefined;
}

/** Entries walked and not yet written, first in first out. */
class Queue {
  private readonly items: Pending[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(p: Pending): void {
    this.items.push(p);
  }

  take(): Pending {
    const next = this.items[this.head++]!;
    if (this.head >= 1024) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return next;
  }
}

interface Writer {
  fs: ContainerFS;
  ahead: ReadAhead;
  sink: TarSink;
  verify: boolean;
}

/**
 * Puts one entry into the sink: its header blocks, then a small file's body from its run (at once
 * when the run is read) or a large one's in 1 MiB chunks, then the padding to a whole block. A promise
 * only when something must be waited for.
 */
function writeEntry(w: Writer, p: Pending): Promise<void> | undefined {
  if (p.size === 0) return w.sink.put(p.head);
  if (p.size > SLAB) return writeLarge(w, p);
  const body = w.ahead.bodyNow(p.placed!);
  if (body) return writeSmall(w, p, body);
  return w.ahead.body(p.placed!).then((b) => writeSmall(w, p, b));
}

function writeSmall(w: Writer, p: Pending, body: Body): Promise<void> | undefined {
  const check = fileCheck(w, p);
  return after(w.sink.put(p.head), () => after(w.sink.put(body.bytes, { file: check, last: true, release: body.release }), () => pad(w, p.size)));
}

/** A large file: each 1 MiB chunk is read while the one before it is copied (two slabs). */
async function writeLarge(w: Writer, { e, head, size }: Pending): Promise<void> {
  const check = fileCheck(w, { e, size });
  const name = `/${e.path}`;
  const read = (pos: number): Promise<Body> => {
    const p = w.ahead.chunk(e.ino, pos, Math.min(SLAB, size - pos), name);
    p.catch(() => undefined); // awaited below, unless the export stopped first
    return p;
  };
  await w.sink.put(head);
  let next = read(0);
  for (let pos = 0; pos < size; ) {
    const chunk = await next;
    pos += chunk.bytes.length;
    if (pos < size) next = read(pos);
    await w.sink.put(chunk.bytes, { file: check, last: pos === size, release: chunk.release });
  }
  await pad(w, size);
}

function fileCheck(w: Writer, { e, size }: Pick<Pending, 'e' | 'size'>): FileCheck | undefined {
  return w.verify && size > 0 ? { name: `/${e.path}`, expected: w.fs.contentSha256(e.ino) } : undefined;
}

/** Zeros up to the body's last whole block. */
function pad(w: Writer, size: number): Promise<void> | undefined {
  const n = (512 - (size % 512)) % 512;
  return n === 0 ? undefined : w.sink.put(END_OF_ARCHIVE.subarray(0, n));
}

/** Runs `next` once `wait` (if any) settled: synchronous while nothing has to wait. */
function after(wait: Promise<void> | undefined, next: () => Promise<void> | undefined): Promise<void> | undefined {
  return wait ? wait.then(next) : next();
}

/** Two zero blocks end the archive (and their start pads a body). */
const END_OF_ARCHIVE = Buffer.alloc(1024);
