/**
 * tar export: the flattened root as one POSIX (pax) tar stream, written with tar-stream's pack.
 * Names are `./path` like `tar -C root -c .`; shared inodes become hardlinks to their first name;
 * xattrs travel as `SCHILY.xattr.<name>` records (what GNU tar, bsdtar and mkfs.erofs read). Names, link
 * targets and xattr names are written as their original bytes (in PAX records, as GNU tar does).
 */
import type { Writable } from 'node:stream';
import tarStream from 'tar-stream';
import type { ContainerFS } from '../vfs/index.js';
import { encodeName, isRawName } from '../util/byte-names.js';
import { withFs, type ExportSource } from './source.js';
import { ReadAhead, SLAB, type Placed } from './read-ahead.js';
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

type Header = Partial<tarStream.Header> & { name: string; binaryPax?: [string, Buffer][] };

const TYPES: Record<number, tarStream.Header['type']> = {
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
    const pack = tarStream.pack();
    patchPaxEncoder(pack);
    const ahead = new ReadAhead(fs);
    const sink = new TarSink(out, options.gzip === undefined || options.gzip === false ? undefined : options.gzip, (err) => {
      ahead.fail(err);
      pack.destroy(err);
    });
    const done = sink.run(pack);
    done.catch(() => undefined); // awaited below, or its error is the cause we rethrow
    const onAbort = (): void => sink.fail(options.signal!.reason as Error);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let entries = 0;
    let bytes = 0;
    const warnings: string[] = [];
    const warn = (message: string): void => {
      warnings.push(message);
      options.onWarning?.(message);
    };
    const readerWants = consumerDemand(pack);
    const queue = new Queue();
    const writer = { pack, fs, ahead, sink, verify: options.verify ?? true };
    const write = async (next: Pending): Promise<boolean> => {
      // pack.entry throws once the pipeline is torn down (a failed write): the real cause is `done`'s
      if (tornDown(pack) || sink.failure) return false;
      await addEntry(writer, next);
      entries++;
      bytes += next.header.type === 'file' ? next.header.size ?? 0 : 0;
      options.onProgress?.({ entries, bytes });
      await readerWants();
      return true;
    };
    try {
      let going = true;
      for (const e of walkTree(fs, undefined, warn)) {
        const header = headerFor(fs, e);
        if (!header) continue;
        options.signal?.throwIfAborted();
        const size = header.type === 'file' ? header.size ?? 0 : 0;
        queue.push({ e, header, placed: size > 0 && size <= SLAB ? ahead.place(e.ino, size) : undefined });
        while (going && (queue.size >= AHEAD_ENTRIES || ahead.full)) going = await write(queue.take());
        if (!going) break;
      }
      while (going && queue.size > 0) going = await write(queue.take());
      if (!tornDown(pack)) pack.finalize();
    } catch (err) {
      // torn down from outside (Ctrl-C, the reader failed): the entry's own error only echoes that cause
      const echo = tornDown(pack) || sink.failure !== undefined;
      sink.fail(err as Error);
      const cause: unknown = await done.then(() => undefined, (e: unknown) => e);
      throw echo && cause !== undefined ? cause : err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    await done;
    return { entries, warnings };
  });
}

/**
 * Backpressure for entries without a body: tar-stream's pack waits for its reader only while writing a
 * file's bytes, so headers alone (a deep or wide tree of directories, 1.1 GB of pax headers for a
 * 32k-deep one) would pile up in its buffer. The returned wait resolves at once while the pack holds
 * less than its high-water mark, else when the reader next asks for data (or the pack is torn down).
 */
function consumerDemand(pack: tarStream.Pack): () => Promise<void> {
  const p = pack as unknown as { _readableState: { buffered: number; highWaterMark: number }; _read(cb: (err?: Error) => void): void };
  let wake: (() => void) | undefined;
  const wakeUp = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const read = p._read.bind(pack);
  p._read = (cb) => {
    wakeUp();
    read(cb);
  };
  pack.on('close', wakeUp);
  return () => {
    if (tornDown(pack) || p._readableState.buffered < p._readableState.highWaterMark) return Promise.resolve();
    return new Promise<void>((resolve) => (wake = resolve));
  };
}

/** streamx's flag: the pack is being destroyed (its `entry` would throw "already finalized or destroyed"). */
function tornDown(pack: tarStream.Pack): boolean {
  return (pack as unknown as { destroying: boolean }).destroying;
}

function headerFor(fs: ContainerFS, e: TreeEntry): Header | undefined {
  const a = e.attr;
  const fmt = a.mode & S_IFMT;
  let type = TYPES[fmt];
  if (type === undefined) return undefined;
  const name = e.path === '' ? './' : `./${e.path}${fmt === S_IFDIR ? '/' : ''}`;
  const h: Header = {
    name,
    mode: a.mode & 0o7777,
    uid: Math.min(a.uid, MAX_OCTAL_ID),
    gid: Math.min(a.gid, MAX_OCTAL_ID),
    mtime: new Date(Math.max(0, a.mtimeSec) * 1000),
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
  for (const x of fs.listxattr(e.ino).sort()) pax.push([`SCHILY.xattr.${x}`, fs.getxattr(e.ino, x)]);
  // A raw (not UTF-8) link target needs the pax encoder too: tar-stream's ustar one writes it as UTF-8.
  // tar-stream's ustar encoder splits long names into prefix + name with a loop that is quadratic in
  // the name's length (cubic over a deep tree): anything ustar cannot hold goes straight to pax.
  if (pax.length > 0 || Buffer.byteLength(name) > USTAR_NAME_MAX || Buffer.byteLength(h.linkname ?? '') > USTAR_LINK_MAX || isRawName(h.linkname ?? '')) {
    h.binaryPax = pax;
    h.pax = {}; // routes the header through the pax encoder below
  }
  return h;
}

/** Entries queued ahead of the one being written (their small files' reads run meanwhile). */
const AHEAD_ENTRIES = 256;

interface Pending {
  e: TreeEntry;
  header: Header;
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
  pack: tarStream.Pack;
  fs: ContainerFS;
  ahead: ReadAhead;
  sink: TarSink;
  verify: boolean;
}

/** Gives one entry to the pack: a small file's body from its run, a large one's in 1 MiB chunks. */
async function addEntry(w: Writer, { e, header, placed }: Pending): Promise<void> {
  const size = header.type === 'file' ? header.size ?? 0 : 0;
  const file: FileCheck | undefined = w.verify && size > 0 ? { name: `/${e.path}`, expected: w.fs.contentSha256(e.ino) } : undefined;
  if (size <= SLAB) {
    const body = placed ? await w.ahead.body(placed) : undefined;
    if (body) w.sink.expect(body.bytes, file, true, body.release);
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (header.type === 'file') w.pack.entry(header, body?.bytes ?? EMPTY, done);
      else w.pack.entry(header, done);
    });
  }
  let failed: Error | undefined;
  const written = new Promise<void>((resolve, reject) => {
    const entry = w.pack.entry(header, (err) => (err ? reject(err) : resolve()));
    // destroy(err) below makes the entry emit 'error': without a listener that is an uncaught exception
    entry.on('error', (err: Error) => (failed ??= err));
    void (async () => {
      for (let pos = 0; pos < size; ) {
        const n = Math.min(SLAB, size - pos);
        // at most two chunks in slabs: the next read waits until the sink copied the one before last
        const chunk = await w.ahead.chunk(e.ino, pos, n, `/${e.path}`);
        pos += n;
        w.sink.expect(chunk.bytes, file, pos === size, chunk.release);
        entry.write(chunk.bytes);
      }
      entry.end(undefined);
    })().catch((err: Error) => {
      entry.destroy(err);
      reject(err);
    });
  });
  await written;
  if (failed) throw failed;
}

const EMPTY = Buffer.alloc(0);

/** One pax record: `<len> <key>=<value>\n` where len counts its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(' '), encodeName(key), Buffer.from('='), value, Buffer.from('\n')]); // xattr names: any bytes
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/**
 * tar-stream 3 builds pax records as UTF-8 strings, which mangles binary xattr values
 * (security.capability). Same layout as its own _encodePax, with byte-exact records.
 */
function patchPaxEncoder(pack: tarStream.Pack): void {
  const p = pack as unknown as {
    _encode(h: Omit<Header, 'type'> & { type: string }): void;
    _encodePax(h: Header): void;
    push(b: Buffer): boolean;
  };
  p._encodePax = function encodePax(header: Header): void {
    const records: Buffer[] = [];
    // names keep their bytes, UTF-8 or not, as GNU tar writes them (it warns on `hdrcharset`, so none is added)
    if (header.name) records.push(paxRecord('path', encodeName(header.name)));
    if (header.linkname) records.push(paxRecord('linkpath', encodeName(header.linkname)));
    for (const [k, v] of header.binaryPax ?? []) records.push(paxRecord(k, v));
    const body = Buffer.concat(records);
    const base = { mode: header.mode, uid: header.uid, gid: header.gid, mtime: header.mtime, devmajor: header.devmajor, devminor: header.devminor };
    p._encode({ ...base, name: 'PaxHeader', size: body.length, type: 'pax-header' });
    p.push(body);
    if (body.length % 512) p.push(Buffer.alloc(512 - (body.length % 512)));
    p._encode({ ...base, name: 'PaxHeader', size: header.size, type: header.type ?? 'file', ...(header.linkname ? { linkname: 'PaxHeader' } : {}) });
  };
}
