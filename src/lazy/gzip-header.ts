/** Gzip member header parsing (RFC 1952 2.3), for the native block inflater's own framing. */
import { ErrorCode, VmimgError } from '../errors.js';

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

function corrupt(what: string): never {
  throw new VmimgError(ErrorCode.INVALID_LAYER, `gzip data is corrupt (${what})`);
}

type Field = 'fixed' | 'xlen' | 'extra' | 'name' | 'comment' | 'hcrc' | 'done';

/**
 * Skips one gzip member header fed in pieces of any size, keeping at most its 10 fixed bytes: a header
 * is as long as zlib accepts (FEXTRA up to 64 KiB, FNAME and FCOMMENT unbounded), so the checkpoint
 * builder refuses no header node:zlib inflates (session 7 breaker L1: a 4 MiB header failed `pull
 * --index-build` where a plain pull worked). Not a gzip header (magic, method 8, reserved flags clear,
 * as zlib checks) is ERR_INVALID_LAYER. The header CRC-16 is skipped, not checked (zlib checks it).
 */
export class GzipHeaderSkipper {
  private field: Field = 'fixed';
  private readonly fixed = new Uint8Array(10);
  private got = 0;
  private flags = 0;
  /** Bytes still to skip in `xlen`, `extra` or `hcrc`; `xlen` gathers its value in `xlen`. */
  private left = 0;
  private xlen = 0;

  /** Consumes header bytes of `b` from `at`: the offset just past the header, or undefined when `b` ended inside it. */
  feed(b: Uint8Array, at: number): number | undefined {
    while (at < b.length || this.field === 'done') {
      if (this.field === 'done') return at;
      at = this.take(b, at);
    }
    return undefined;
  }

  private take(b: Uint8Array, at: number): number {
    switch (this.field) {
      case 'fixed': {
        const n = Math.min(10 - this.got, b.length - at);
        this.fixed.set(b.subarray(at, at + n), this.got);
        this.got += n;
        this.checkFixed();
        if (this.got === 10) this.next('fixed');
        return at + n;
      }
      case 'xlen':
        this.xlen |= b[at]! << (8 * (2 - this.left));
        if (--this.left === 0) {
          this.left = this.xlen;
          this.next('xlen');
        }
        return at + 1;
      case 'extra':
      case 'hcrc': {
        const n = Math.min(this.left, b.length - at);
        this.left -= n;
        if (this.left === 0) this.next(this.field);
        return at + n;
      }
      default: {
        const nul = b.indexOf(0, at);
        if (nul < 0) return b.length;
        this.next(this.field);
        return nul + 1;
      }
    }
  }

  private checkFixed(): void {
    const f = this.fixed;
    if (this.got >= 1 && f[0] !== 0x1f) corrupt('incorrect header check');
    if (this.got >= 2 && f[1] !== 0x8b) corrupt('incorrect header check');
    if (this.got >= 3 && f[2] !== 8) corrupt('unknown compression method');
    if (this.got >= 4 && (f[3]! & 0xe0) !== 0) corrupt('unknown header flags set');
    this.flags = f[3] ?? 0;
  }

  /** Moves past `done` to the next field the flags announce (an empty FEXTRA goes straight on). */
  private next(done: Field): void {
    const order: [Field, number][] = [['xlen', FEXTRA], ['extra', FEXTRA], ['name', FNAME], ['comment', FCOMMENT], ['hcrc', FHCRC]];
    let i = done === 'fixed' ? 0 : order.findIndex(([f]) => f === done) + 1;
    for (; i < order.length; i++) {
      const [field, flag] = order[i]!;
      if ((this.flags & flag) === 0) continue;
      if (field === 'extra' && this.left === 0) continue;
      if (field === 'xlen') this.left = 2;
      if (field === 'hcrc') this.left = 2;
      this.field = field;
      return;
    }
    this.field = 'done';
  }
}
