/**
 * Turns tar headers into index entries: name normalisation, whiteouts, hardlink checks,
 * duplicates (later wins). Pure: no I/O.
 * A hardlink to an earlier entry shares its inode (hardlinks.ts keeps it when the name is replaced);
 * a hardlink to anything else is left for the merge to find in a lower layer (docs/FORMAT.md).
 * Names and hardlink targets below a symlink of the same layer are moved into its target
 * (symlink-parents.ts): no entry of a layer's index ever sits below one of its symlinks.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { EntryType, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, type EntryTypeValue, type IndexEntry, type TarSparse } from './entry.js';
import type { TarHeader } from './tar-reader.js';
import { classifyWhiteout, fromBytes, normaliseTarPath } from './paths.js';
import { INDEX_VERSION, LIMITS } from './index-format.js';
import { RecordTable } from './record-table.js';
import { HardlinkGroups } from './hardlinks.js';
import { LayerSymlinks } from './symlink-parents.js';
import { encodeName } from '../util/byte-names.js';


/** Tar typeflag → entry type and S_IFMT bits. */
const TYPES: Readonly<Record<string, [EntryTypeValue, number]>> = {
  '0': [EntryType.File, S_IFREG],
  '1': [EntryType.Hardlink, S_IFREG],
  '2': [EntryType.Symlink, S_IFLNK],
  '3': [EntryType.CharDevice, S_IFCHR],
  '4': [EntryType.BlockDevice, S_IFBLK],
  '5': [EntryType.Dir, S_IFDIR],
  '6': [EntryType.Fifo, S_IFIFO],
  D: [EntryType.Dir, S_IFDIR], // GNU dumpdir: a directory plus a listing we do not need
};


export interface FileContent {
  offset: number;
  size: number;
  sha256: string;
  /** Where the bytes sit in the uncompressed tar (`.idx` version 2). */
  tarOffset: number;
  tarSparse?: TarSparse;
}

/** Printable form of a byte name for messages. */
function show(latin1: string): string {
  return JSON.stringify(fromBytes(latin1).text);
}

export class EntriesBuilder {
  /** Keyed by latin1 path; whiteouts/opaques in their own key space so they never replace real entries. */
  readonly entries = new RecordTable(INDEX_VERSION);
  private readonly hardlinks = new HardlinkGroups();
  private readonly symlinks = new LayerSymlinks();

  constructor(private readonly layer: string) {}

  private fail(msg: string): VmimgError {
    return new VmimgError(ErrorCode.INVALID_LAYER, msg, { details: { layer: this.layer } }); // flattenLayer prefixes the layer name
  }

  /** Checks before the entry's data is read: true when the data belongs in `.contents`. */
  precheck(h: TarHeader): boolean {
    const name = h.name.toString('latin1');
    if (h.type === 'V') return false;
    if (TYPES[h.type] === undefined) throw this.fail(`entry ${show(name)} has unsupported tar type "${h.type}"`);
    return h.type === '0' && h.size > 0 && classifyWhiteout(normaliseTarPath(name) ?? '').kind === 'none';
  }

  add(h: TarHeader, content?: FileContent): void {
    if (h.type === 'V') return; // volume label: not a file
    const name = h.name.toString('latin1');
    if (name.includes('\0')) throw this.fail(`entry ${show(name)} has a NUL byte in its name`);
    const lexical = normaliseTarPath(name);
    if (lexical === null) throw this.fail(`entry ${show(name)} escapes the layer root`);
    const path = this.symlinks.resolveParent(lexical);
    const wh = classifyWhiteout(path);
    if (wh.kind === 'invalid') throw this.fail(`entry ${show(name)}: ${wh.why}`);
    if (wh.kind === 'aufs-meta') return;
    if (wh.kind === 'opaque') return this.put(`\0o${wh.dir}`, this.base(EntryType.Opaque, wh.dir, S_IFREG, h));
    if (wh.kind === 'whiteout') return this.put(`\0w${wh.target}`, this.base(EntryType.Whiteout, wh.target, S_IFREG, h));
    const [type, ifmt] = TYPES[h.type]!;
    if (!validId(h.uid) || !validId(h.gid)) throw this.fail(`entry ${show(name)} has uid/gid ${h.uid}/${h.gid} outside 0..2^32-1`);
    const old = this.entries.get(path);
    if (old !== undefined) {
      this.replacing(path);
      if (old.type === EntryType.Dir && type !== EntryType.Dir) this.entries.cut(path); // its tree goes with it
    }
    const entry = this.base(type, path, ifmt, h);
    if (type === EntryType.File) {
      entry.offset = content?.offset ?? 0;
      entry.size = content?.size ?? 0;
      if (entry.size > 0) entry.sha256 = content!.sha256; // an empty file's is known: not stored (docs/FORMAT.md)
      if (entry.size > 0) entry.tarOffset = content!.tarOffset;
      if (entry.size > 0 && content!.tarSparse !== undefined) entry.tarSparse = content!.tarSparse;
    } else if (type === EntryType.Symlink) {
      this.setLink(entry, h.linkname.toString('latin1'));
    } else if (type === EntryType.Hardlink) {
      const inode = this.linkTo(entry, path, name, h.linkname.toString('latin1'));
      if (inode?.type === EntryType.Symlink) this.symlinks.set(path, 'symlink', latin1Of(inode)); // link(2) of a symlink is that symlink
    } else if (type === EntryType.CharDevice || type === EntryType.BlockDevice) {
      entry.devMajor = h.devMajor;
      entry.devMinor = h.devMinor;
    }
    if (type === EntryType.Symlink) this.symlinks.set(path, 'symlink', h.linkname.toString('latin1'));
    else if (type !== EntryType.Hardlink) this.symlinks.set(path, type === EntryType.Dir ? 'dir' : 'other');
    this.put(path, entry);
  }

  /** Points every in-layer hardlink at its inode's final holder; call once, after the last add(). */
  finish(): RecordTable {
    for (const key of this.hardlinks.holders()) if (this.entries.wasCut(key)) this.inherit(key);
    for (const [key, inodeKey] of this.hardlinks.links()) {
      const link = this.entries.get(key)!;
      const before = link.linkTarget;
      this.setLink(link, inodeKey);
      if (link.linkTarget !== before) this.entries.replace(key, link);
    }
    return this.entries;
  }

  /** The entries decoded, in order (tests; the flattener writes `finish()`'s records as they are). */
  list(): IndexEntry[] {
    return [...this.finish().values()];
  }

  /**
   * The name holding a hardlinked inode went with a replaced directory: the inode lives on in its first
   * hardlink that is still there (as after extracting the tar, where the other names keep the file).
   */
  private inherit(key: string): void {
    for (let holder = key; ; ) {
      const heirKey = this.replacing(holder, true);
      if (heirKey === undefined || !this.entries.wasCut(heirKey)) return;
      holder = heirKey; // the heir went too: the next hardlink inherits
    }
  }

  /** `key` is about to name a new entry: the inode it held stays with its first hardlink, if any (returned). */
  private replacing(key: string, cut = false): string | undefined {
    const heirKey = this.hardlinks.release(key);
    if (heirKey === undefined) return undefined;
    const old = this.entries.get(key, cut)!;
    const heir = this.entries.get(heirKey, true)!;
    const inode: IndexEntry = { ...old, path: heir.path }; // same position: still before the other hardlinks
    if (heir.pathBytes !== undefined) inode.pathBytes = heir.pathBytes;
    else delete inode.pathBytes;
    this.entries.replace(heirKey, inode, true);
    return heirKey;
  }

  private put(key: string, entry: IndexEntry): void {
    this.checkLimits(entry, key);
    this.entries.set(key, entry); // later wins, at the later position
  }

  /** What the .idx format cannot hold is a bad layer, not a bad index. */
  private checkLimits(e: IndexEntry, key: string): void {
    const bytes = (t: string | undefined, raw: Buffer | undefined): number => raw?.length ?? Buffer.byteLength(t ?? '');
    if (bytes(e.path, e.pathBytes) > LIMITS.pathBytes) throw this.fail(`entry ${show(key.slice(0, 80))}... has a name over ${LIMITS.pathBytes} bytes`);
    if (bytes(e.linkTarget, e.linkTargetBytes) > LIMITS.linkBytes) throw this.fail(`entry ${show(key)} has a link target over ${LIMITS.linkBytes} bytes`);
    const xattrs = Object.entries(e.xattrs ?? {});
    if (xattrs.length > LIMITS.xattrs) throw this.fail(`entry ${show(key)} has more than ${LIMITS.xattrs} xattrs`);
    for (const [name, value] of xattrs) {
      if (encodeName(name).length > LIMITS.xattrName || value.length > LIMITS.xattrValue) throw this.fail(`entry ${show(key)} has an oversized xattr ${JSON.stringify(name.slice(0, 80))}`);
    }
  }

  private base(type: EntryTypeValue, path: string, ifmt: number, h: TarHeader): IndexEntry {
    const name = fromBytes(path);
    const entry: IndexEntry = {
      type,
      path: name.text,
      mode: ifmt | (h.mode & 0o7777),
      uid: h.uid,
      gid: h.gid,
      mtimeSec: h.mtimeSec,
      mtimeNsec: h.mtimeNsec,
      size: 0,
      offset: 0,
      devMajor: 0,
      devMinor: 0,
    };
    if (name.raw !== undefined) entry.pathBytes = name.raw;
    if (h.xattrs !== undefined) entry.xattrs = h.xattrs;
    return entry;
  }

  private setLink(entry: IndexEntry, latin1: string): void {
    const link = fromBytes(latin1);
    entry.linkTarget = link.text;
    if (link.raw !== undefined) entry.linkTargetBytes = link.raw;
  }

  /** How an earlier whiteout or opaque marker of this layer took `key` away, if one did. */
  private hiddenEarlier(key: string): string | undefined {
    if (this.entries.has(`\0w${key}`)) return 'a whiteout removed';
    for (let slash = key.lastIndexOf('/'); ; slash = key.lastIndexOf('/', slash - 1)) {
      const dir = slash < 0 ? '' : key.slice(0, slash);
      if (this.entries.has(`\0o${dir}`)) return `an opaque marker of ${dir === '' ? 'the root' : show(dir)} hid`;
      if (dir !== '' && this.entries.has(`\0w${dir}`)) return `a whiteout of ${show(dir)} removed`;
      if (slash <= 0) return undefined;
    }
  }

  /**
   * Tar hardlink targets are root-relative. A hardlink to an earlier entry of this layer shares its
   * inode (content, mode, owner, mtime, xattrs are copied; chains collapse to the inode's holder).
   * Any other target is kept as named: the merge links it to a lower layer's file or refuses it.
   */
  private linkTo(entry: IndexEntry, key: string, name: string, rawTarget: string): IndexEntry | undefined {
    const lexical = normaliseTarPath(rawTarget);
    if (lexical === null) throw this.fail(`hardlink ${show(name)} points outside the layer root (${show(rawTarget)})`);
    const target = this.symlinks.resolveParent(lexical);
    if (target === key) throw this.fail(`hardlink ${show(name)} names itself`);
    const earlier = this.entries.get(target);
    if (earlier === undefined) {
      const hidden = this.hiddenEarlier(target);
      // Extracting in order, the name is gone by now (overlayfs: a whiteout, umoci: removed): nothing to link.
      if (hidden !== undefined) throw this.fail(`hardlink ${show(name)} names ${show(rawTarget)}, which ${hidden} earlier in its layer`);
      this.setLink(entry, target);
      entry.lowerLink = true; // whatever this layer later puts at that name
      return undefined;
    }
    if (earlier.type === EntryType.Dir) throw this.fail(`hardlink ${show(name)} names the directory ${show(rawTarget)}`);
    // The inode's holder: the entry itself, or what an earlier hardlink links to. A holder that is a
    // hardlink to a lower layer's file is named as is: the merge gives both that lower file.
    const inodeKey = earlier.type === EntryType.Hardlink ? (this.hardlinks.inodeOf(target) ?? target) : target;
    const source = this.entries.get(inodeKey)!;
    this.setLink(entry, inodeKey);
    this.hardlinks.add(key, inodeKey);
    entry.mode = source.mode;
    entry.uid = source.uid;
    entry.gid = source.gid;
    entry.mtimeSec = source.mtimeSec;
    entry.mtimeNsec = source.mtimeNsec;
    if (source.xattrs !== undefined) entry.xattrs = source.xattrs;
    entry.size = source.size;
    entry.offset = source.offset;
    if (source.sha256 !== undefined && source.size > 0) entry.sha256 = source.sha256;
    if (source.tarOffset !== undefined) entry.tarOffset = source.tarOffset;
    if (source.tarSparse !== undefined) entry.tarSparse = source.tarSparse;
    return source;
  }
}

function validId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id <= 0xffffffff;
}


/** A symlink entry's target as the builder's latin1 key space has it. */
function latin1Of(symlink: IndexEntry): string {
  return (symlink.linkTargetBytes ?? Buffer.from(symlink.linkTarget ?? '', 'utf8')).toString('latin1');
}
