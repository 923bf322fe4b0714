/**
 * The gzip framing around raw deflate data (RFC 1952), read a byte at a time: each member's header,
 * its trailer, and what follows the last member. The inflate worker uses it when a layer's output is
 * checked by its sha256 (the diff_id): a raw engine then inflates the deflate data and no CRC-32 of
 * the tar is computed (~8 % of the inflate: 70 ms of CPU for the 204 MB bench tar). The rest is
 * checked as zlib's gunzip checks it, with zlib's messages and codes: the magic, the method, the
 * reserved flags, each member's length (ISIZE), a cut-short stream; after a member, a zero byte ends
 * the stream (padding; the rest is dropped, as node's gunzip drops it) and anything else must be the
 * next member's header.
 */

/** zlib's error, as node:zlib reports it (`message`, `code`). */
export interface ZlibFailure {
  message: string;
  code: string;
}

const RESERVED = 0xe0; // flag bits gzip leaves reserved
const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;

const dataError = (message: string): ZlibFailure => ({ message, code: 'Z_DATA_ERROR' });

/** The error zlib's gunzip gives for input that ends inside a member. */
export const CUT_SHORT: ZlibFailure = { message: 'unexpected end of file', code: 'Z_BUF_ERROR' };

type Part = 'fixed' | 'xlen' | 'extra' | 'name' | 'comment' | 'hcrc';

/** Where the reader is: in framing bytes, in a member's deflate data, or past the end. */
export type FramingPhase = 'header' | 'deflate' | 'trailer' | 'ended';

/** A gzip stream's framing; see the module comment. */
export class GzipFraming {
  phase: FramingPhase = 'header';
  /** Members whose trailer was read. */
  members = 0;
  /** Members whose deflate data was seen to end (a step of progress that reads no byte). */
  ends = 0;
  error: ZlibFailure | undefined;
  private part: Part = 'fixed';
  /** Bytes of the current header part (or trailer) read so far, and how many it has. */
  private at = 0;
  private length = 0;
  private flags = 0;
  private isize = 0;
  /** Output offset where the current member's deflate data started. */
  private outStart = 0;

  /** True when the input may end here: after a member's trailer (or its padding), never inside one. */
  get complete(): boolean {
    return this.members > 0 && ((this.phase === 'header' && this.part === 'fixed' && this.at === 0) || this.phase === 'ended');
  }

  /**
   * Reads one framing byte (phase 'header', 'trailer' or 'ended'); `produced` is the output so far.
   * Sets `error` (zlib's) when the byte is not what gzip allows there. True when a member's deflate
   * data starts after it.
   */
  byte(b: number, produced: number): boolean {
    if (this.phase === 'trailer') this.trailer(b, produced);
    else if (this.phase !== 'header') return false;
    else if (this.part === 'fixed' && this.at === 0 && this.members > 0 && b === 0) this.phase = 'ended'; // zero padding after a member: the rest is dropped
    else this.header(b, produced);
    return (this.phase as FramingPhase) === 'deflate'; // header() may have moved it on
  }

  /** The member's deflate data ended (its raw engine stopped) with `produced` output bytes in all. */
  deflateEnded(produced: number): void {
    this.ends++;
    this.phase = 'trailer';
    this.at = 0;
    this.isize = (produced - this.outStart) % 2 ** 32;
    this.length = 0;
  }

  private header(b: number, produced: number): void {
    const i = this.at++;
    switch (this.part) {
      case 'fixed':
        if ((i === 0 && b !== 0x1f) || (i === 1 && b !== 0x8b)) return void (this.error = dataError('incorrect header check'));
        if (i === 2 && b !== 8) return void (this.error = dataError('unknown compression method'));
        if (i === 3) {
          if ((b & RESERVED) !== 0) return void (this.error = dataError('unknown header flags set'));
          this.flags = b;
        }
        if (i === 9) this.next(produced); // MTIME, XFL and OS are not needed
        return;
      case 'xlen':
        this.length |= b << (8 * i);
        if (i === 1) {
          this.part = 'extra';
          this.at = 0;
          if (this.length === 0) this.next(produced);
        }
        return;
      case 'extra':
        if (this.at === this.length) this.next(produced);
        return;
      case 'name':
      case 'comment':
        if (b === 0) this.next(produced);
        return;
      case 'hcrc':
        if (i === 1) this.next(produced); // the header's CRC-16: not checked, like the data's CRC-32
    }
  }

  /** The header part after the current one, or the deflate data. */
  private next(produced: number): void {
    const order: [Part, number][] = [['xlen', FEXTRA], ['name', FNAME], ['comment', FCOMMENT], ['hcrc', FHCRC]];
    const from = this.part === 'fixed' ? 0 : this.part === 'extra' ? 1 : order.findIndex(([p]) => p === this.part) + 1;
    this.at = 0;
    this.length = 0;
    for (let k = from; k < order.length; k++) {
      if ((this.flags & order[k]![1]) !== 0) {
        this.part = order[k]![0];
        return;
      }
    }
    this.part = 'fixed';
    this.phase = 'deflate';
    this.outStart = produced;
  }

  private trailer(b: number, produced: number): void {
    const i = this.at++;
    if (i >= 4) this.length += b * 2 ** (8 * (i - 4)); // ISIZE, little-endian; bytes 0-3 are the CRC-32
    if (i < 7) return;
    if (this.length !== this.isize) return void (this.error = dataError('incorrect length check'));
    this.members++;
    this.phase = 'header';
    this.part = 'fixed';
    this.at = 0;
    this.length = 0;
    this.outStart = produced;
  }
}
