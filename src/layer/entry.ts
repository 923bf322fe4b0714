/**
 * One entry of a flattened layer, as stored in a `.idx` file (see docs/FORMAT.md).
 * This is the contract between the flattener (writer), the index codec, and ContainerFS (reader).
 */
/** Linux st_mode file-type bits, as stored in `IndexEntry.mode`. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const EntryType = {
  File: 1,
  Dir: 2,
  Symlink: 3,
  Hardlink: 4,
  CharDevice: 5,
  BlockDevice: 6,
  Fifo: 7,
  /** `.wh.NAME`: hides `path` in lower layers. */
  Whiteout: 8,
  /** `.wh..wh..opq`: `path` is the directory whose lower-layer contents are hidden. */
  Opaque: 9,
} as const;
export type EntryTypeValue = (typeof EntryType)[keyof typeof EntryType];

export interface IndexEntry {
  type: EntryTypeValue;
  /**
   * Normalised root-relative path: no leading `/`, no `./`, no `//`, no trailing `/`.
   * The root directory itself is `''`. Decoded losslessly (util/byte-names.ts): valid UTF-8 as
   * usual, each byte of an invalid sequence as U+DC80..U+DCFF; `encodeName(path)` gives the bytes back.
   */
  path: string;
  /** Present only when the raw name is not valid UTF-8. */
  pathBytes?: Buffer;
  /** Full Linux st_mode: S_IFMT type bits | setuid/setgid/sticky | permissions. */
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** Bytes of content (regular files only; 0 otherwise). */
  size: number;
  /** Offset of the content in the layer's `.contents`, a multiple of 4096 (regular files only). */
  offset: number;
  /** Lowercase hex sha256 of the content (regular files only). */
  sha256?: string;
  /** Device numbers (char/block devices only). */
  devMajor: number;
  devMinor: number;
  /** Symlink: target exactly as in the tar. Hardlink: normalised root-relative path of an earlier entry. */
  linkTarget?: string;
  /** Present only when the raw link target is not valid UTF-8 (its exact bytes; `linkTarget` decodes them losslessly). */
  linkTargetBytes?: Buffer;
  /** Extended attributes (from PAX `SCHILY.xattr.*`), e.g. `security.capability`; names decoded like `path`. */
  xattrs?: Record<string, Buffer>;
  /**
   * `.idx` version 2: offset in the layer's uncompressed tar of the content's first data byte (files
   * with content, and hardlinks carrying their target's); 0 or absent otherwise (docs/FORMAT.md).
   */
  tarOffset?: number;
  /**
   * `.idx` version 2, files stored sparse in the tar (not contiguous): where the entry's first header
   * block starts and how many data bytes the archive stores after its last header (the `size` field).
   */
  tarSparse?: TarSparse;
  /**
   * Hardlinks only (`.idx` version 2): the target is no entry of this layer, so the merge links the
   * lower layers' file at `linkTarget`, even when this layer also puts an entry at that name.
   */
  lowerLink?: boolean;
}

/** Where a sparse file sits in its tar: `[headerOffset, tarOffset + storedSize)` re-read by the tar reader. */
export interface TarSparse {
  headerOffset: number;
  storedSize: number;
}
