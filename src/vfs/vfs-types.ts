/** Argument and result shapes of ContainerFS's API. */
/**
 * An image path or name: a string in util/byte-names.ts form (UTF-8 names as they are; a byte that is
 * not UTF-8 as U+DC80..U+DCFF), or the raw bytes.
 */
export type ImagePath = string | Uint8Array;
/** `{ encoding: 'buffer' }` asks for raw bytes instead of strings, as node:fs does. */
export interface BufferEncodingOption {
  encoding: 'buffer';
}

export interface DirEntry {
  name: string;
  ino: number;
  /** d_type (see DT). */
  type: number;
  /** Pass as `cookie` to continue after this entry. */
  nextCookie: number;
}
