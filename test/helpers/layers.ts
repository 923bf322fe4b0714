// Layer fixtures for the flattener, made by outside tools only (umoci, GNU tar, zstd, mknod,
// setfattr), and a reference reader: GNU tar extracts a layer and we walk the result with lstat.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { appendFileSync, linkSync, lstatSync, truncateSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync, chmodSync, chownSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { memo } from './cache.js';
import { requireTools, run, runBuffer, tmpDir } from './tools.js';
import { buildBusyboxLayout, type BuiltImage } from './busybox.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';

export interface LayerBlob {
  digest: string;
  diffId: string;
  /** blobs/sha256/<hex> in the layout. */
  path: string;
  mediaType: string;
}

export interface RichImage {
  image: BuiltImage;
  layers: LayerBlob[];
}

export const BIG_FILE_BYTES = 33 * 1024 * 1024 + 123;
/** A 300-byte path (components under 255) and a name just over ustar's 100. */
export const LONG_DIR = `long/${'d'.repeat(120)}/${'e'.repeat(120)}`;
export const LONG_NAME = `${LONG_DIR}/${'f'.repeat(60)}.txt`;
export const UNICODE_NAME = 'unicode/héllo wörld ✓ 日本.txt';
export const PING_CAP = '0x0100000200200000000000000000000000000000';
/** Not valid UTF-8: xattr values must survive as raw bytes. */
export const USER_BIN = '0xff00fe80c3';

function sha(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Deterministic pseudo-random bytes (a file gzip cannot shrink). */
function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

/** Content needing root and outside tools: devices, fifos, setuid, xattrs, odd names, big file. */
export async function populateRich(dir: string): Promise<void> {
  requireTools(['mknod', 'mkfifo', 'setfattr']);
  const p = (rel: string): string => join(dir, rel);
  for (const d of ['dev', 'run', 'usr/bin', 'data/sub', 'links', 'weird', 'unicode', LONG_DIR, 'srv']) mkdirSync(p(d), { recursive: true });
  await run('mknod', ['-m', '0666', p('dev/null'), 'c', '1', '3']);
  await run('mknod', ['-m', '0660', p('dev/sda'), 'b', '8', '0']);
  await run('mknod', ['-m', '0620', p('dev/tty9'), 'c', '4', '9']);
  await run('mkfifo', ['-m', '0644', p('run/initctl')]);
  writeFileSync(p('usr/bin/su'), 'su\n');
  chmodSync(p('usr/bin/su'), 0o4755);
  writeFileSync(p('usr/bin/wall'), 'wall\n');
  chownSync(p('usr/bin/wall'), 0, 5); // before chmod: chown clears setgid
  chmodSync(p('usr/bin/wall'), 0o2755);
  mkdirSync(p('srv/sticky'));
  chmodSync(p('srv/sticky'), 0o1777);
  writeFileSync(p('usr/bin/ping'), 'ping\n');
  await run('setfattr', ['-n', 'security.capability', '-v', PING_CAP, p('usr/bin/ping')]);
  await run('setfattr', ['-n', 'user.comment', '-v', 'hello xattr', p('usr/bin/ping')]);
  await run('setfattr', ['-n', 'user.bin', '-v', USER_BIN, p('usr/bin/ping')]);
  writeFileSync(p('data/orig'), 'shared by three names\n');
  linkSync(p('data/orig'), p('data/link'));
  linkSync(p('data/orig'), p('data/sub/link2'));
  writeFileSync(p('data/empty'), '');
  writeFileSync(p('data/owned'), 'owned\n');
  chownSync(p('data/owned'), 1000, 65534);
  symlinkSync('../data/orig', p('links/rel'));
  symlinkSync('/data/orig', p('links/abs'));
  symlinkSync('../nowhere/at/all', p('links/dangling'));
  symlinkSync('chain2', p('links/chain1'));
  symlinkSync('rel', p('links/chain2'));
  symlinkSync('loop2', p('links/loop1'));
  symlinkSync('loop1', p('links/loop2'));
  writeFileSync(p(LONG_NAME), 'long\n');
  writeFileSync(p(UNICODE_NAME), 'unicode\n');
  writeFileSync(p('weird/tab\there'), 'tab\n');
  writeFileSync(p('weird/new\nline'), 'newline\n');
  writeFileSync(p('weird/sp ace'), 'space\n');
  const fd = openSync(p('data/big.bin'), 'w');
  for (let i = 0, left = BIG_FILE_BYTES; left > 0; i++) {
    const n = Math.min(left, 4 << 20);
    writeSync(fd, noise(n, i + 7));
    left -= n;
  }
  closeSync(fd);
}

/** The layout's layer blobs in order, with diff_ids from the config. */
export function layoutLayers(layout: string, manifestDigest: string): LayerBlob[] {
  const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.slice('sha256:'.length));
  const manifest = JSON.parse(readFileSync(blob(manifestDigest), 'utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return manifest.layers.map((l, i) => ({ digest: l.digest, diffId: config.rootfs.diff_ids[i]!, path: blob(l.digest), mediaType: l.mediaType }));
}

/**
 * A busybox image (Debian's busybox-static) with, on top: a rich layer (devices, fifo, setuid,
 * xattrs, hardlinks, symlinks of every kind, long and unicode names, a >32 MiB file), two whiteouts,
 * an opaque directory, and an overriding layer. Built with umoci; memoised per process.
 */
export function buildRichImage(): Promise<RichImage> {
  return memo('layers:rich-image', async () => {
    requireTools(['umoci']);
    const image = await buildBusyboxLayout({
      arch: 'amd64',
      tag: 'rich',
      extraLayers: [
        { populate: populateRich },
        { whiteout: '/etc/arch' },
        { whiteout: '/links/dangling' },
        { files: { 'fresh.txt': 'replaced everything\n', 'nested/x': 'x\n' }, at: '/data', opaque: true },
        { files: { 'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n', 'data/orig': 'new content\n' } },
      ],
    });
    return { image, layers: layoutLayers(image.layout, image.manifestDigest) };
  });
}

/** A source tree for GNU tar with what umoci cannot write: a non-UTF-8 name, sub-second mtimes, a long link target. */
export async function buildGnuTarSource(): Promise<string> {
  const root = join(await tmpDir('vmimg-gnutar-'), 'src');
  mkdirSync(join(root, 'a/b'), { recursive: true });
  writeFileSync(join(root, 'a/b/file'), 'gnu tar file\n');
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'a') + '/'), Buffer.from([0x6e, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e])]), 'latin1 name\n');
  const longDir = join(root, 'g'.repeat(150), 'h'.repeat(150));
  mkdirSync(longDir, { recursive: true });
  writeFileSync(join(longDir, 'deep-file'), 'deep\n');
  symlinkSync(`/${'t'.repeat(150)}/${'u'.repeat(150)}`, join(root, 'a/long-link'));
  linkSync(join(longDir, 'deep-file'), join(root, 'a/hard-to-long'));
  writeFileSync(join(root, 'a/noise'), noise(200_000, 3));
  utimesSync(join(root, 'a/b/file'), 1_600_000_000.25, 1_600_000_000.123456);
  return root;
}

/** `tar -c` of `root` with GNU tar in the given format, sorted by name, as bytes. */
export async function gnuTar(root: string, format: 'gnu' | 'posix' | 'ustar' | 'oldgnu'): Promise<Buffer> {
  requireTools(['tar']);
  // posix: a global PAX header (comment=...) that readers must skip.
  const extra = format === 'posix' ? ['--pax-option=comment=vmimg global header'] : [];
  return runBuffer('tar', ['-c', `--format=${format}`, ...extra, '--sort=name', '--xattrs', '-C', root, '.']);
}

export function zstdCompress(data: Buffer): Buffer {
  requireTools(['zstd']);
  return execFileSync('zstd', ['-q', '-c', '-3', '-'], { input: data, maxBuffer: 1 << 30 });
}

/** Plain tar bytes of a (gzip or plain) layer blob, with end-of-archive blocks added for GNU tar. */
export function tarBytes(blob: Buffer): Buffer {
  const plain = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
  return Buffer.concat([plain, Buffer.alloc(1024)]);
}

export interface RefEntry {
  kind: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  ino: number;
  rdevMajor: number;
  rdevMinor: number;
  sha256?: string;
  link?: Buffer;
}

/** Extracts tar bytes with GNU tar (as root: owners, devices, xattrs) into a fresh dir. */
export async function extractWithGnuTar(tar: Buffer): Promise<string> {
  requireTools(['tar']);
  const dir = await tmpDir('vmimg-ref-');
  const file = join(dir, 'layer.tar');
  writeFileSync(file, tar);
  const out = join(dir, 'root');
  mkdirSync(out);
  await run('tar', ['-x', '-p', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-f', file, '-C', out]);
  return out;
}

/** Walks an extracted tree: key = path bytes as latin1 (root-relative, '/'-separated). */
export function walkReference(root: string): Map<string, RefEntry> {
  const out = new Map<string, RefEntry>();
  const visit = (abs: Buffer, rel: string): void => {
    for (const name of readdirSync(abs, { encoding: 'buffer' })) {
      const childAbs = Buffer.concat([abs, Buffer.from('/'), name]);
      const childRel = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      const st = lstatSync(childAbs);
      const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'fifo';
      const entry: RefEntry = {
        kind, mode: st.mode, uid: st.uid, gid: st.gid, size: kind === 'file' ? st.size : 0,
        mtimeSec: Math.floor(st.mtimeMs / 1000), ino: st.ino,
        rdevMajor: Math.floor(st.rdev / 256) & 0xfff, rdevMinor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
      };
      if (kind === 'file') entry.sha256 = sha(readFileSync(childAbs));
      if (kind === 'symlink') entry.link = readlinkSync(childAbs, { encoding: 'buffer' });
      out.set(childRel, entry);
      if (kind === 'dir') visit(childAbs, childRel);
    }
  };
  visit(Buffer.from(root), '');
  return out;
}

/** `getfattr -d` of one file as name → hex value. */
export async function xattrsOf(path: string): Promise<Record<string, string>> {
  requireTools(['getfattr']);
  const text = await run('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', path]);
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

const KIND_OF: Record<number, RefEntry['kind']> = {
  [EntryType.File]: 'file', [EntryType.Dir]: 'dir', [EntryType.Symlink]: 'symlink',
  [EntryType.CharDevice]: 'char', [EntryType.BlockDevice]: 'block', [EntryType.Fifo]: 'fifo',
};

/** An index entry's path bytes as latin1 (the key walkReference uses). */
export function entryKey(e: IndexEntry): string {
  return (e.pathBytes ?? Buffer.from(e.path, 'utf8')).toString('latin1');
}

function linkBytes(e: IndexEntry): Buffer {
  return e.linkTargetBytes ?? Buffer.from(e.linkTarget ?? '', 'utf8');
}

/**
 * Differences between flattened entries and a GNU-tar-extracted reference (empty = identical):
 * type, st_mode, owner, size, content hash, link target, rdev, hardlink identity, mtime (non-dirs),
 * whiteout/opaque markers; and every reference path must be covered.
 */
export function compareWithReference(entries: IndexEntry[], ref: Map<string, RefEntry>, contents: Buffer): string[] {
  const problems: string[] = [];
  const covered = new Set<string>();
  for (const e of entries) {
    const key = entryKey(e);
    const show = JSON.stringify(e.path);
    if (e.type === EntryType.Whiteout || e.type === EntryType.Opaque) {
      const i = key.lastIndexOf('/');
      const marker = e.type === EntryType.Opaque ? `${key === '' ? '' : `${key}/`}.wh..wh..opq` : `${key.slice(0, i + 1)}.wh.${key.slice(i + 1)}`;
      if (!ref.has(marker)) problems.push(`${show}: no ${marker} in the reference`);
      covered.add(marker);
      continue;
    }
    if (key === '') continue;
    const r = ref.get(key);
    covered.add(key);
    if (r === undefined) {
      problems.push(`${show}: not in the reference`);
      continue;
    }
    const want = (field: string, a: unknown, b: unknown): void => {
      if (a !== b) problems.push(`${show}: ${field} ${String(a)} != reference ${String(b)}`);
    };
    if (e.type === EntryType.Hardlink) {
      const target = ref.get(linkBytes(e).toString('latin1'));
      want('hardlink identity (inode)', r.ino, target?.ino);
    } else {
      want('type', KIND_OF[e.type], r.kind);
    }
    want('mode', e.mode.toString(8), r.mode.toString(8));
    want('uid', e.uid, r.uid);
    want('gid', e.gid, r.gid);
    want('size', e.size, r.size);
    want('sha256', e.sha256, r.sha256);
    if (r.kind === 'file' && e.sha256 !== undefined) {
      want('.contents bytes', sha(contents.subarray(e.offset, e.offset + e.size)), r.sha256);
    }
    if (e.type === EntryType.Symlink) want('link', linkBytes(e).toString('latin1'), r.link?.toString('latin1'));
    if (r.kind === 'char' || r.kind === 'block') want('rdev', `${e.devMajor}:${e.devMinor}`, `${r.rdevMajor}:${r.rdevMinor}`);
    if (r.kind !== 'dir') want('mtime', e.mtimeSec, r.mtimeSec);
  }
  for (const [key, r] of ref) {
    if (!covered.has(key) && r.kind !== 'dir') problems.push(`reference ${JSON.stringify(key)} has no index entry`);
  }
  return problems;
}

/**
 * A 9 MiB sparse file at `path`: 'head', then 30 data islands 256 KiB apart (more than an old GNU
 * header's 4 map slots, so extension blocks are needed) and a trailing hole. For GNU tar `--sparse`.
 */
export function writeSparseFile(path: string): void {
  writeFileSync(path, 'head');
  for (let i = 1; i <= 30; i++) {
    truncateSync(path, i * 256 * 1024);
    appendFileSync(path, `island ${i}`);
  }
  truncateSync(path, 9 << 20);
}

/** GNU tar's sparse formats: [name, `tar -c --sparse` arguments]. */
export const GNU_SPARSE_FORMATS: [string, string[]][] = [
  ['gnu', ['--format=gnu']],
  ['pax 0.0', ['--format=posix', '--sparse-version=0.0']],
  ['pax 0.1', ['--format=posix', '--sparse-version=0.1']],
  ['pax 1.0', ['--format=posix', '--sparse-version=1.0']],
];
