/**
 * A stream that is nothing but a stretch of a file (a `docker save` member, an OCI layout's blob) can
 * say so: a consumer that would copy its chunks somewhere anyway (the flattener, into its hash ring)
 * may then read the file itself, straight to where the bytes are needed, and leave the stream unread.
 */
import type { Readable } from 'node:stream';

/** `length` bytes of the regular file at `path` from byte `offset`. */
export interface FileRegion {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
}

const REGION = Symbol('vmimg.fileRegion');

/** Marks `stream` as yielding exactly `region`'s bytes (and returns it). */
export function withRegion<T extends Readable>(stream: T, region: FileRegion): T {
  (stream as unknown as Record<symbol, FileRegion>)[REGION] = region;
  return stream;
}

/** The file region `stream` yields, when it was made as one ({@link withRegion}); else undefined. */
export function regionOf(stream: Readable): FileRegion | undefined {
  return (stream as unknown as Record<symbol, FileRegion | undefined>)[REGION];
}
