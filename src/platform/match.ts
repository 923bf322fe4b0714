/**
 * Platform matching with a preference order, after containerd's `platforms.Only`:
 * - `arm64` ≡ `arm64/v8`; `arm64/v9` also takes v8.x and v8;
 * - `arm/v7` also takes v6 then v5 (closest first); `amd64/v3` takes v2, then plain amd64 (v1);
 * - a candidate with no variant matches any wanted variant of its architecture;
 * - a candidate with no platform at all counts as linux/amd64 (single-arch Docker images);
 * - attestation entries (`unknown/unknown`) never match.
 * Deliberately not done (containerd does): arm64 → arm/v7 and amd64 → 386 fallbacks, because a VM
 * kernel may lack 32-bit compat, and a surprising 32-bit pick is worse than a clear error.
 */
import { normalizePlatform } from './normalize.js';
import type { Platform } from './types.js';

export interface PlatformMatcher {
  readonly wanted: Platform;
  /** True when a candidate can run where `wanted` runs. */
  match(candidate: Platform | undefined): boolean;
  /** 0 for a perfect match, larger for less preferred ones, -1 for no match. */
  rank(candidate: Platform | undefined): number;
  /** True when `a` is preferred over `b`. */
  less(a: Platform | undefined, b: Platform | undefined): boolean;
}

const NO_VARIANT_RANK = 100;
const DEFAULT_LEVEL: Readonly<Record<string, number>> = { amd64: 1, arm: 7, arm64: 8 };

export const DEFAULT_CANDIDATE: Platform = { os: 'linux', architecture: 'amd64' };

/** Attestation manifests in BuildKit indexes carry `unknown/unknown`. */
export function isAttestationPlatform(p: Platform | undefined): boolean {
  return p !== undefined && (p.os === 'unknown' || p.architecture === 'unknown');
}

export function createMatcher(wanted: Platform): PlatformMatcher {
  const w = normalizePlatform(wanted);
  const rank = (candidate: Platform | undefined): number => rankCandidate(w, candidate);
  return {
    wanted: w,
    match: (c) => rank(c) >= 0,
    rank,
    less: (a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      if (ra < 0) return false;
      return rb < 0 || ra < rb;
    },
  };
}

/** Index of the best-matching candidate (the first among equals), or -1 when none matches. */
export function selectBest(candidates: readonly { platform?: Platform }[], wanted: Platform): number {
  const matcher = createMatcher(wanted);
  let best = -1;
  let bestRank = Infinity;
  candidates.forEach((c, i) => {
    const r = matcher.rank(c.platform);
    if (r >= 0 && r < bestRank) {
      best = i;
      bestRank = r;
    }
  });
  return best;
}

function rankCandidate(w: Platform, candidate: Platform | undefined): number {
  const raw = candidate ?? DEFAULT_CANDIDATE;
  if (isAttestationPlatform(raw) || isAttestationPlatform(w)) return -1;
  const c = normalizePlatform(raw);
  if (c.os !== w.os || c.architecture !== w.architecture) return -1;
  const hadVariant = raw.variant !== undefined && raw.variant !== '';
  const base = DEFAULT_LEVEL[w.architecture];
  if (base === undefined) {
    if (!hadVariant || c.variant === w.variant) return 0;
    return w.variant === undefined ? 1 : -1;
  }
  const wantedLevel = level(w.variant, base);
  const candidateLevel = level(c.variant, base);
  if (Number.isNaN(wantedLevel) || Number.isNaN(candidateLevel)) {
    return c.variant === w.variant ? 0 : hadVariant ? -1 : NO_VARIANT_RANK;
  }
  if (candidateLevel <= wantedLevel) return Math.round((wantedLevel - candidateLevel) * 10);
  return hadVariant ? -1 : NO_VARIANT_RANK;
}

/** `v7` → 7, `v8.2` → 8.2; the architecture's default when absent; NaN when not a version. */
function level(variant: string | undefined, base: number): number {
  if (variant === undefined) return base;
  const m = /^v(\d+)(?:\.(\d+))?$/.exec(variant);
  if (!m) return NaN;
  return Number(m[1]) + (m[2] !== undefined ? Number(m[2]) / 10 : 0);
}
