/**
 * initramfs export: the flattened root as a gzip-compressed newc cpio, streamed, with the guest init
 * (/.vmimg/init + /.vmimg/config, and /init → .vmimg/init unless the image has its own /init).
 */
import type { Writable } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { commandLine, type RuntimeConfig } from '../image/runtime-config.js';
import type { ContainerFS } from '../vfs/index.js';
import { cpioDataPad, cpioHeader, cpioTrailer } from './cpio.js';
import { guestEntries, type GuestEntry } from './guest-entries.js';
import { GUEST_INIT, guestConfig } from './guest-init.js';
import { isImage, withFs, type ExportSource } from './source.js';
import { inodeStream, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, splitDev, walkTree, type ExportProgress } from './walk.js';
import { ParallelGzip } from '../util/parallel-gzip.js';

export interface InitramfsOptions {
  /** Replaces the image's cmd (appended to the entrypoint, like `docker run IMAGE ARGS`). */
  command?: string[];
  /** Replaces the image's entrypoint. */
  entrypoint?: string[];
  /** Add the guest init (default true). Needs the runtime config: pass an Image, or `config`. */
  init?: boolean;
  /** Runtime config when the source is a bare ContainerFS. */
  config?: RuntimeConfig;
  /** gzip level 0-9 (default 6); `false` writes the cpio uncompressed. */
  gzip?: number | false;
  signal?: AbortSignal;
  /** Check every file's bytes against its index sha256 (default true): ERR_DIGEST_MISMATCH naming the file. */
  verify?: boolean;
  /** Hears each warning (an image entry replaced or left out), as it happens; all are in the result too. */
  onWarning?: (message: string) => void;
  /** Hears the progress after each entry (often: throttle what you draw). */
  onProgress?: (progress: ExportProgress) => void;
}

export interface InitramfsResult {
  /** Entries written (including the guest init's). */
  entries: number;
  /** The image has its own /init: boot with `rdinit=/.vmimg/init`. */
  hasOwnInit: boolean;
  /** What to pass as `rdinit=` (always safe to pass). */
  rdinit: string;
  /** The command the guest init runs. */
  argv: string[];
  /** Image entries replaced or left out, and why (docs/EXPORT.md). */
  warnings: string[];
}

/** Writes the initramfs to `out` (which is ended). */
export async function exportInitramfs(source: ExportSource, out: Writable, options: InitramfsOptions = {}): Promise<InitramfsResult> {
  const config = isImage(source) ? source.config : options.config;
  const withInit = options.init ?? true;
  if (withInit && !config) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'initramfs with the guest init needs the runtime config', {
      hint: 'pass an Image, or options.config, or init: false',
    });
  }
  return withFs(source, async (fs) => {
    if (withInit) requireShell(fs);
    const hasOwnInit = fs.exists('/init') || isSymlink(fs, '/init');
    const merged = { ...config!, entrypoint: options.entrypoint ?? config?.entrypoint ?? [] };
    const argv = config ? commandLine(merged, options.command) : [];
    const counter = { entries: 0, bytes: 0, ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
    const warnings: string[] = [];
    const warn = (message: string): void => {
      warnings.push(message);
      options.onWarning?.(message);
    };
    const guest = withInit ? guestEntries(fs, guestConfig(merged, argv), hasOwnInit, warn) : { entries: [], replaced: new Set<string>() };
    const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream)[] = [
      Readable.from(cpioStream(fs, guest.entries, (p) => guest.replaced.has(p), warn, counter, options.verify ?? true)),
    ];
    if (options.gzip !== false) stages.push(new ParallelGzip({ level: options.gzip ?? 6 })); // on every core (util/parallel-gzip.ts)
    stages.push(out);
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages, ...(options.signal ? [{ signal: options.signal }] : []));
    return { entries: counter.entries, hasOwnInit, rdinit: GUEST_INIT, argv, warnings };
  });
}

/** The guest init needs /bin/sh in the image (followed through symlinks, a regular file). */
export function requireShell(fs: ContainerFS): void {
  let ok = false;
  try {
    const st = fs.stat('/bin/sh');
    ok = st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, 'the image has no /bin/sh: the vmimg guest init is a shell script', {
      hint: 'add a shell to the image (busybox, dash); an export can leave the guest init out (--no-init, or init: false in the library) and bring its own /init',
    });
  }
}

function isSymlink(fs: ContainerFS, path: string): boolean {
  try {
    return fs.lstat(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Entries and file bytes written so far, and who hears them. */
interface Counter extends ExportProgress {
  onProgress?: (progress: ExportProgress) => void;
}

async function* cpioStream(
  fs: ContainerFS,
  extras: GuestEntry[],
  skip: (path: string) => boolean,
  warn: (message: string) => void,
  counter: Counter,
  verify: boolean,
): AsyncGenerator<Buffer> {
  for (const e of walkTree(fs, skip, warn)) {
    const a = e.attr;
    const type = a.mode & S_IFMT;
    const base = { name: e.path === '' ? '.' : e.path, ino: e.ino, mode: a.mode, uid: a.uid, gid: a.gid, mtime: a.mtimeSec };
    counter.entries++;
    counter.onProgress?.({ entries: counter.entries, bytes: counter.bytes });
    if (type === S_IFREG) {
      const size = e.linkTo === undefined ? a.size : 0;
      yield cpioHeader({ ...base, nlink: a.nlink, size });
      if (size > 0) {
        for await (const chunk of inodeStream(fs, e.ino, size, `/${e.path}`, verify)) yield chunk as Buffer;
        yield cpioDataPad(size);
        counter.bytes += size;
      }
    } else if (type === S_IFLNK) {
      const target = fs.readlink(e.ino, { encoding: 'buffer' });
      yield Buffer.concat([cpioHeader({ ...base, nlink: 1, size: target.length }), target, cpioDataPad(target.length)]);
    } else {
      const { major, minor } = splitDev(a.rdev);
      yield cpioHeader({ ...base, nlink: type === S_IFDIR ? 2 : 1, size: 0, rdevMajor: major, rdevMinor: minor });
    }
  }
  let ino = fs.inodeCount + 1;
  for (const x of extras) {
    const data = x.data ?? Buffer.alloc(0);
    const h = { ...x.header, ino: ino++, uid: 0, gid: 0, mtime: 0, size: data.length };
    yield Buffer.concat([cpioHeader({ ...h, nlink: (h.mode & S_IFMT) === S_IFDIR ? 2 : 1 }), data, cpioDataPad(data.length)]);
    counter.entries++;
  }
  yield cpioTrailer();
}
