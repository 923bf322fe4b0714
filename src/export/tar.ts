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
import { BodyReader } from './tar-reads.js';
import { encodeHeader, type EntryType, type TarHeader } from './tar-headers.js';
import { TarSink, WRITE_BYTES } from './tar-sink.js';
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
    const sink = new TarSink(out, options.gzip === undefined || options.gzip === false ? undefined : options.gzip);
    const reads = new BodyReader(fs, sink);
    const onAbort = (): void => sink.fail(options.signal!.reason as Error);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let entries = 0;
    let bytes = 0;
    const warnings: string[] = [];
    const warn = (message: string): void => {
      warnings.push(message);
      options.onWarning?.(message);
    };
    const verify = options.verify ?? true;
    try {
      for (const e of walkTree(fs, undefined, warn)) {
        const header = headerFor(fs, e);
        if (!header) continue;
        options.signal?.throwIfAborted();
        const size = header.size;
        // header, body (its read started), padding: a promise only where the ring has no room yet
        let wait = place(sink, reads, encodeHeader(header));
        if (wait) await wait;
        if (size > 0) {
          const check = verify ? { name: `/${e.path}`, expected: fs.contentSha256(e.ino) } : undefined;
          if ((wait = reads.place(e.ino, size, check))) await wait;
          if ((wait = place(sink, reads, padding(size)))) await wait;
        }
        entries++;
        bytes += size;
        options.onProgress?.({ entries, bytes });
      }
      const end = place(sink, reads, END_OF_ARCHIVE);
      if (end) await end;
      await reads.drain();
      await sink.end();
    } catch (err) {
      // torn down from outside (Ctrl-C, the reader failed): the entry's own error only echoes that cause
      sink.fail(err as Error);
      throw sink.failure;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      await reads.close();
    }
    return { entries, warnings };
  });
}

/** Copies header or padding bytes into the sink, in 1 MiB pieces; a promise only when it must wait for room. */
function place(sink: TarSink, reads: BodyReader, bytes: Buffer): Promise<void> | undefined {
  if (bytes.length <= WRITE_BYTES && sink.fits(bytes.length)) {
    if (isZeros(bytes)) sink.zeros(bytes.length);
    else sink.copy(bytes);
    return undefined;
  }
  return (async () => {
    for (let at = 0; at < bytes.length; at += WRITE_BYTES) {
      const piece = bytes.subarray(at, at + WRITE_BYTES);
      if (!sink.fits(piece.length)) {
        reads.flush(); // room may come only from what the open run holds back
        await sink.room(piece.length);
      }
      sink.copy(piece);
    }
  })();
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
    uid: a.uid,
    gid: a.gid,
    mtime: a.mtimeSec,
    mtimeNsec: a.mtimeNsec,
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
  // numbers ustar cannot hold (uid/gid, mtime before 1970 or past 2242) get their pax records in encodeHeader
  const xattrs = fs.listxattr(e.ino);
  if (xattrs.length > 0) for (const x of xattrs.sort()) pax.push([`SCHILY.xattr.${x}`, fs.getxattr(e.ino, x)]);
  // A raw (not UTF-8) link target needs the pax encoder too: tar-stream's ustar one writes it as UTF-8.
  // tar-stream's ustar encoder splits long names into prefix + name with a loop that is quadratic in
  // the name's length (cubic over a deep tree): anything ustar cannot hold goes straight to pax.
  const link = h.linkname ?? '';
  if (pax.length > 0 || Buffer.byteLength(name) > USTAR_NAME_MAX || Buffer.byteLength(link) > USTAR_LINK_MAX || isRawName(link)) h.pax = pax;
  return h;
}

/** Zeros up to the body's last whole block (a view of the end-of-archive blocks). */
function padding(size: number): Buffer {
  return END_OF_ARCHIVE.subarray(0, (512 - (size % 512)) % 512);
}

function isZeros(bytes: Buffer): boolean {
  return bytes.buffer === END_OF_ARCHIVE.buffer;
}

/** Two zero blocks end the archive (and their start pads a body). */
const END_OF_ARCHIVE = Buffer.alloc(1024);
