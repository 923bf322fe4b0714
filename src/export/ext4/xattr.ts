/**
 * Extended attributes as ext4 stores them (fs/ext4/xattr.h, e2fsprogs lib/ext2fs/ext_attr.c):
 * in the inode's spare bytes when they fit, else in one shared xattr block (identical sets share a
 * block with a reference count). Names carry a prefix index; POSIX ACLs are converted from the
 * xattr API form (version 2) to ext4's compact on-disk form (version 1).
 */
import { ErrorCode, VmimgError } from '../../errors.js';
import { BLOCK, EXTRA_ISIZE, INODE_SIZE } from './format.js';
import { encodeName } from '../../util/byte-names.js';

const MAGIC = 0xea020000;
/** In-inode space after the 4-byte magic. */
const INLINE_SPACE = INODE_SIZE - 128 - EXTRA_ISIZE - 4;
/** Block space after the 32-byte header. */
const BLOCK_SPACE = BLOCK - 32;

// longest prefix first so "system.posix_acl_access" wins over "system."
const PREFIXES: [string, number][] = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['user.', 1],
  ['trusted.', 4],
  ['security.', 6],
  ['system.', 7],
];

interface Entry {
  index: number;
  name: Buffer;
  value: Buffer;
}

function toEntry(fullName: string, value: Buffer): Entry {
  for (const [prefix, index] of PREFIXES) {
    if (!fullName.startsWith(prefix)) continue;
    const rest = encodeName(fullName.slice(prefix.length)); // any bytes (util/byte-names.ts)
    if (rest.length > 255) throw new VmimgError(ErrorCode.TOO_LARGE, `xattr name ${fullName} is longer than ext4 allows (255 bytes after the prefix)`);
    return { index, name: rest, value: index === 2 || index === 3 ? aclToDisk(value, fullName) : value };
  }
  throw new VmimgError(ErrorCode.INVALID_IMAGE, `xattr ${fullName}: ext4 stores only user., trusted., security. and system. attributes`);
}

/** posix_acl_xattr (v2, 8-byte entries) → ext4_acl (v1; 4-byte entries except ACL_USER/ACL_GROUP). */
function aclToDisk(value: Buffer, name: string): Buffer {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== 2) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `xattr ${name} is not a POSIX ACL (version 2)`);
  }
  const parts = [Buffer.from([1, 0, 0, 0])];
  for (let at = 4; at < value.length; at += 8) {
    const tag = value.readUInt16LE(at);
    const full = tag === 0x02 || tag === 0x08; // ACL_USER, ACL_GROUP carry an id
    const e = Buffer.alloc(full ? 8 : 4);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(value.readUInt16LE(at + 2), 2);
    if (full) e.writeUInt32LE(value.readUInt32LE(at + 4), 4);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** e2fsprogs' ext2fs_ext_attr_hash_entry (names hashed as signed chars, like x86 e2fsprogs and the kernel). */
function entryHash(e: Entry): number {
  let hash = 0;
  for (const c of e.name) hash = ((hash << 5) ^ (hash >>> 27) ^ (c >= 0x80 ? c - 256 : c)) >>> 0;
  const padded = Buffer.alloc(pad4(e.value.length));
  e.value.copy(padded);
  for (let i = 0; i < padded.length; i += 4) hash = ((hash << 16) ^ (hash >>> 16) ^ padded.readUInt32LE(i)) >>> 0;
  return hash;
}

function entriesSize(entries: Entry[]): number {
  return entries.reduce((n, e) => n + 16 + pad4(e.name.length) + pad4(e.value.length), 4);
}

/** Writes entries from `at` and values from the end of `buf` down; offsets are relative to `base`. */
function layOut(entries: Entry[], buf: Buffer, at: number, base: number): number[] {
  let valueEnd = buf.length;
  const hashes: number[] = [];
  for (const e of entries) {
    valueEnd -= pad4(e.value.length);
    e.value.copy(buf, valueEnd);
    const hash = entryHash(e);
    hashes.push(hash);
    buf.writeUInt8(e.name.length, at);
    buf.writeUInt8(e.index, at + 1);
    buf.writeUInt16LE(e.value.length === 0 ? 0 : valueEnd - base, at + 2);
    buf.writeUInt32LE(0, at + 4); // e_value_inum
    buf.writeUInt32LE(e.value.length, at + 8);
    buf.writeUInt32LE(hash, at + 12);
    e.name.copy(buf, at + 16);
    at += 16 + pad4(e.name.length);
  }
  return hashes;
}

export type XattrPlacement = { kind: 'none' } | { kind: 'inline'; area: Buffer } | { kind: 'block'; block: Buffer; key: string };

/** Where an inode's xattrs go: the inline area (magic + entries + values) or a whole xattr block. */
export function placeXattrs(xattrs: ReadonlyMap<string, Buffer>, path: string): XattrPlacement {
  if (xattrs.size === 0) return { kind: 'none' };
  const entries = [...xattrs].map(([name, value]) => toEntry(name, value));
  if (entriesSize(entries) <= INLINE_SPACE) {
    const area = Buffer.alloc(INLINE_SPACE + 4);
    area.writeUInt32LE(MAGIC, 0);
    layOut(entries, area.subarray(4), 0, 0);
    return { kind: 'inline', area };
  }
  if (entriesSize(entries) > BLOCK_SPACE) {
    throw new VmimgError(ErrorCode.TOO_LARGE, `/${path}: its xattrs take ${entriesSize(entries)} bytes, more than one ext4 xattr block (${BLOCK_SPACE})`);
  }
  // the kernel binary-searches block entries: sorted by index, name length, name
  entries.sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
  const block = Buffer.alloc(BLOCK);
  const hashes = layOut(entries, block, 32, 0);
  block.writeUInt32LE(MAGIC, 0);
  block.writeUInt32LE(1, 4); // h_refcount, raised for shared blocks by setRefcount
  block.writeUInt32LE(1, 8); // h_blocks
  let h = 0;
  for (const e of hashes) h = ((h << 16) ^ (h >>> 16) ^ e) >>> 0;
  block.writeUInt32LE(h, 16); // h_hash
  return { kind: 'block', block, key: block.toString('base64') };
}

/** Sets a shared xattr block's reference count (number of inodes pointing at it). */
export function setRefcount(block: Buffer, count: number): void {
  block.writeUInt32LE(count, 4);
}
