/**
 * Path resolution confined to the image: every component may be a symlink (followed, absolute
 * targets restart at the image root), `..` stops at the root, more than 40 links → ELOOP.
 * `..` is applied to the directory actually reached (POSIX), not lexically.
 * The hot path allocates only the component substrings.
 */
import { VfsError } from './errors.js';
import { decodeName, nameString } from '../util/byte-names.js';
import { type InodeTable, ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT } from './tree.js';

export const MAX_SYMLINK_HOPS = 40;
const SLASH = 47;
const DOT = 46;

/** Paths remembered by resolve(); the cache is simply dropped when full. */
const CACHE_LIMIT = 1 << 16;
/** A string whose escaped bytes spell valid UTF-8 (U+DCC3 U+DCA4 is "ä") is retried in the names' form. */
const SURROGATE = /[\ud800-\udfff]/;

export class Resolver {
  /** After walk() of a non-directory: the directory holding it and the name used. */
  lastParent = ROOT_INO;
  lastName = '';
  private hops = 0;
  // Paths that met no symlink and do not end on one: the same answer for stat and lstat.
  private readonly cache = new Map<string, number>();

  constructor(private readonly t: InodeTable) {}

  /** Inode of `path`; `followLast` false gives lstat semantics (a trailing slash still follows). */
  resolve(path: string | Uint8Array, followLast: boolean, syscall: string): number {
    if (typeof path !== 'string') path = decodeName(path);
    const hit = this.cache.get(path);
    if (hit !== undefined) return hit;
    const ino = this.walk(path, followLast, syscall);
    if (this.hops === 0 && (this.t.mode[ino]! & S_IFMT) !== S_IFLNK) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(path, ino);
    }
    return ino;
  }

  private notFound(path: string, followLast: boolean, syscall: string): number {
    const canonical = SURROGATE.test(path) ? nameString(path) : path;
    if (canonical !== path) return this.walk(canonical, followLast, syscall);
    throw new VfsError('ENOENT', syscall, path);
  }

  /** resolve() without the cache, setting lastParent / lastName. */
  walk(path: string | Uint8Array, followLast: boolean, syscall: string): number {
    const t = this.t;
    const given = typeof path === 'string' ? path : decodeName(path);
    let p = given;
    let i = 0;
    let cur = ROOT_INO;
    let hops = 0;
    for (;;) {
      while (i < p.length && p.charCodeAt(i) === SLASH) i++;
      if (i >= p.length) {
        this.lastName = '';
        this.hops = hops;
        return cur;
      }
      let j = p.indexOf('/', i);
      if (j < 0) j = p.length;
      let k = j;
      while (k < p.length && p.charCodeAt(k) === SLASH) k++;
      const last = k >= p.length;
      const len = j - i;
      if (p.charCodeAt(i) === DOT && (len === 1 || (len === 2 && p.charCodeAt(i + 1) === DOT))) {
        if (len === 2) cur = t.parent[cur]!;
        i = j;
        continue;
      }
      const name = i === 0 && j === p.length ? p : p.slice(i, j);
      const child = t.child(cur, name);
      if (child === 0) return this.notFound(given, followLast, syscall);
      const type = t.mode[child]! & S_IFMT;
      if (type === S_IFDIR) {
        cur = child;
        i = j;
        continue;
      }
      if (type === S_IFLNK && (!last || followLast || j < p.length)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new VfsError('ELOOP', syscall, given);
        const target = t.linkTarget(child)!;
        if (target === '') throw new VfsError('ENOENT', syscall, given);
        p = j < p.length ? target + p.slice(j) : target;
        i = 0;
        if (target.charCodeAt(0) === SLASH) cur = ROOT_INO;
        continue;
      }
      if (!last || j < p.length) throw new VfsError('ENOTDIR', syscall, given);
      this.lastParent = cur;
      this.lastName = name;
      this.hops = hops;
      return child;
    }
  }
}

/** Absolute path of a directory inode, from its parents' directory entries. */
export function dirPath(t: InodeTable, ino: number): string {
  if (ino === ROOT_INO) return '/';
  const names: string[] = [];
  for (let cur = ino; cur !== ROOT_INO; cur = t.parent[cur]!) names.push(t.name(t.selfDirent[cur]!));
  return '/' + names.reverse().join('/');
}
