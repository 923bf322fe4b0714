/**
 * What one layer may cost (docs/DECISIONS.md "Bounded by design"). Every limit has a default a real
 * image never reaches, a name in its error (ERR_TOO_LARGE) and a way to change it: the `limits` object
 * of the config file (src/config.ts) and, for the expansion limits, `--max-layer-size` /
 * `--max-layer-ratio` on pull and load.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import type { TarHeader } from './tar-reader.js';

export interface LayerLimits {
  /** Bytes a layer's tar may expand to, sparse holes included (default 64 GiB). */
  maxLayerSize: number;
  /** … and at most this many times its compressed size, whichever is hit first (default 1000). */
  maxLayerRatio: number;
  /** Tar entries (headers) in one layer (default 2 000 000). */
  maxLayerEntries: number;
  /** Total bytes of xattr names and values in one layer (default 64 MiB). */
  maxLayerXattrBytes: number;
  /** Bytes read from the image's /etc/passwd or /etc/group to resolve `User` (default 8 MiB). */
  maxUserFileBytes: number;
  /**
   * Largest window a zstd frame may declare, bytes (default 8 MiB: RFC 8878 §3.1.1.1.2 asks decoders to
   * support at least that; `zstd -19` uses it, only --ultra and --long go past). fzstd moves its whole
   * window on every block, so a larger one costs memory and time a layer's size does not show.
   */
  maxZstdWindow: number;
}

export const DEFAULT_LIMITS: Readonly<LayerLimits> = {
  maxLayerSize: 64 * 2 ** 30,
  maxLayerRatio: 1000,
  maxLayerEntries: 2_000_000,
  maxLayerXattrBytes: 64 * 2 ** 20,
  maxUserFileBytes: 8 * 2 ** 20,
  maxZstdWindow: 8 * 2 ** 20,
};

/** How a user changes each limit: the flag (if any) and the config file key. */
const HOW: Record<keyof LayerLimits, string> = {
  maxLayerSize: '--max-layer-size or "limits": {"maxLayerSize"} in the config file',
  maxLayerRatio: '--max-layer-ratio or "limits": {"maxLayerRatio"} in the config file',
  maxLayerEntries: '"limits": {"maxLayerEntries"} in the config file',
  maxLayerXattrBytes: '"limits": {"maxLayerXattrBytes"} in the config file',
  maxUserFileBytes: '"limits": {"maxUserFileBytes"} in the config file',
  maxZstdWindow: '"limits": {"maxZstdWindow"} in the config file',
};

/** Defaults completed with `overrides` (undefined fields keep their default). */
export function resolveLimits(overrides: Partial<LayerLimits> = {}): LayerLimits {
  const out = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof LayerLimits)[]) {
    const v = overrides[key];
    if (v === undefined) continue;
    const whole = key !== 'maxLayerRatio'; // a ratio may be 1.5
    if (!(typeof v === 'number' && v > 0 && (whole ? Number.isSafeInteger(v) || v === Infinity : !Number.isNaN(v)))) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `limit ${key} must be a positive ${whole ? 'whole ' : ''}number, not ${String(v)}`);
    }
    out[key] = v;
  }
  return out;
}

/** ERR_TOO_LARGE naming the limit, its value and how to raise it. */
export function tooLarge(key: keyof LayerLimits, what: string, details: Record<string, unknown> = {}): VmimgError {
  return new VmimgError(ErrorCode.TOO_LARGE, what, {
    hint: `raise the limit with ${HOW[key]} if the image is trusted`,
    details: { limit: key, ...details },
  });
}

/** `1073741824` → `1 GiB`: sizes in messages. */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b?)$/i;
const SHIFT: Record<string, number> = { '': 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

/** `64G`, `500MiB`, `1.5g`, `4096` → bytes (binary units); ERR_INVALID_ARGUMENT naming `what` otherwise. */
export function parseSize(text: string | number, what: string): number {
  const m = typeof text === 'number' ? null : SIZE_RE.exec(text.trim());
  const n = typeof text === 'number' ? text : m === null ? NaN : Math.floor(Number(m[1]) * 2 ** SHIFT[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${what} must be a size such as 64G, 512M or 4096, not "${text}"`);
  }
  return n;
}

/**
 * Counts one layer's cost as its tar streams through the flattener and refuses it (ERR_TOO_LARGE) as
 * soon as a limit is passed: before reading a file whose declared size would pass the expansion limit,
 * so an 8 PiB sparse file or a 10 GiB gzip of zeros costs nothing to refuse.
 */
export class LayerBudget {
  /** Declared (logical) bytes so far: tar bytes plus sparse holes. */
  private expanded = 0;
  private holes = 0;
  private entries = 0;
  private xattrBytes = 0;
  private readonly cap: number;
  private readonly capKey: 'maxLayerSize' | 'maxLayerRatio';

  /** `compressedSize`: the blob's size when known (the descriptor's); else the ratio is not applied. */
  constructor(
    private readonly limits: LayerLimits,
    private readonly compressedSize: number | undefined,
  ) {
    const byRatio = compressedSize !== undefined && compressedSize > 0 ? compressedSize * limits.maxLayerRatio : Infinity;
    this.capKey = byRatio < limits.maxLayerSize ? 'maxLayerRatio' : 'maxLayerSize';
    this.cap = Math.min(byRatio, limits.maxLayerSize);
  }

  /** One tar entry whose header ends at tar byte `tarOffset`; `stored`: data bytes it has in the tar. */
  entry(h: TarHeader, tarOffset: number, stored: number): void {
    if (++this.entries > this.limits.maxLayerEntries) {
      throw tooLarge('maxLayerEntries', `layer has more than ${this.limits.maxLayerEntries} entries`, { entries: this.entries });
    }
    if (h.xattrs !== undefined) {
      let bytes = 0;
      for (const [name, value] of Object.entries(h.xattrs)) bytes += name.length + value.length;
      this.xattrBytes += bytes;
      if (this.xattrBytes > this.limits.maxLayerXattrBytes) {
        throw tooLarge('maxLayerXattrBytes', `layer has more than ${formatBytes(this.limits.maxLayerXattrBytes)} of xattrs`);
      }
    }
    if (h.sparse) this.holes += Math.max(0, h.size - stored);
    this.check(tarOffset + stored, h);
  }

  /** `tarBytes` of the tar read so far (headers and data). */
  check(tarBytes: number, h?: TarHeader): void {
    this.expanded = tarBytes + this.holes;
    if (this.expanded <= this.cap) return;
    const what = h === undefined ? 'layer' : `layer (at entry ${JSON.stringify(h.name.toString('latin1').slice(0, 100))}${h.sparse ? `, a sparse file of ${formatBytes(h.size)}` : ''})`;
    const limit =
      this.capKey === 'maxLayerRatio'
        ? `${this.limits.maxLayerRatio}× its compressed size of ${formatBytes(this.compressedSize!)} (${formatBytes(this.cap)})`
        : formatBytes(this.cap);
    throw tooLarge(this.capKey, `${what} expands past ${limit}`, { limitBytes: this.cap });
  }
}
