/**
 * Choosing one image of a source that holds several (docker save classic and Docker 25+, OCI archive,
 * OCI layout directory). A selector is a tag or ref name (`busybox:1.36`, `docker.io/library/busybox:1.36`,
 * a bare OCI ref name `1.36`), a manifest digest or a config digest — the full `sha256:<hex>`, or a
 * unique prefix of at least 12 hex digits, with or without `sha256:` (what `docker images` shows).
 * Without a selector every image is a candidate, unless they carry different names (then one must be
 * named). The platform then decides among the candidates; when images of different entries remain
 * equally good, the choice is refused (ERR_AMBIGUOUS_IMAGE) listing what is there, never made silently. Pure: each source lists its images, this picks.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { createMatcher, formatPlatform, normalizePlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';

/** Shortest digest prefix accepted as a selector (as short as `docker images` ids are, 12 hex). */
export const MIN_DIGEST_PREFIX = 12;

export interface ImageCandidate {
  /** Tags and ref names it is known by (RepoTags; ref.name and containerd name annotations). */
  names: readonly string[];
  /** Digests that select it: its manifest's and those of the indexes above it (`sha256:<hex>`). */
  digests: readonly string[];
  configDigest?: string;
  /** Its platform, when known (a descriptor's `platform` or the config's). */
  platform?: Platform;
  /**
   * Which entry of the source it belongs to (a manifest.json entry, a top-level index.json
   * descriptor). Equally good platforms within one entry are one multi-platform image (the first
   * wins); across entries they are different images (ambiguous).
   */
  entry: number;
}

/** `sha256:` + hex, or bare hex, of a digest-like selector (lower case); undefined for names. */
function digestPrefix(selector: string): string | undefined {
  const m = /^(?:sha256:)?([0-9a-fA-F]+)$/.exec(selector);
  if (!m || (!selector.startsWith('sha256:') && m[1]!.length < MIN_DIGEST_PREFIX)) return undefined;
  const hex = m[1]!.toLowerCase();
  if (hex.length < MIN_DIGEST_PREFIX) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `"${selector}" is too short to select an image by digest: give at least ${MIN_DIGEST_PREFIX} hex digits`);
  }
  return `sha256:${hex}`;
}

/** True when the selector would be matched against digests (so a source may look up more of them). */
export function isDigestSelector(selector: string): boolean {
  try {
    return digestPrefix(selector) !== undefined;
  } catch {
    return true;
  }
}

/** `busybox:1.36` matches `busybox:1.36`, `docker.io/library/busybox:1.36` and a bare `1.36` ref name. */
export function nameMatches(candidate: string, wanted: string): boolean {
  if (candidate === wanted) return true;
  const strip = (s: string) => s.replace(/^docker\.io\/(library\/)?/, '');
  return strip(candidate) === strip(wanted) || candidate.endsWith(`:${wanted}`);
}

/** The candidates `selector` names (every one when it is undefined); possibly none. */
export function matchSelector<T extends ImageCandidate>(candidates: readonly T[], selector: string | undefined): T[] {
  if (selector === undefined || selector === '') return [...candidates];
  const prefix = digestPrefix(selector);
  return candidates.filter(
    (c) =>
      c.names.some((n) => nameMatches(n, selector)) ||
      (prefix !== undefined && [...c.digests, c.configDigest ?? ''].some((d) => d.startsWith(prefix))),
  );
}

/** One line per candidate: its names, short manifest and config digests, platform. */
export function describeCandidates(candidates: readonly ImageCandidate[]): string {
  const short = (d: string) => d.slice(0, 'sha256:'.length + 12);
  return candidates
    .map((c) => {
      const parts = [c.names.length > 0 ? c.names.join(', ') : '(untagged)'];
      if (c.digests.length > 0) parts.push(`manifest ${short(c.digests[0]!)}`);
      if (c.configDigest) parts.push(`config ${short(c.configDigest)}`);
      if (c.platform) parts.push(formatPlatform(normalizePlatform(c.platform)));
      return parts.join(' ');
    })
    .join('; ');
}

const HINT = `name one with --tag: a tag or ref name, a manifest or config digest, or a unique prefix of ${MIN_DIGEST_PREFIX}+ hex digits`;

/**
 * The one image to use: `selector` first, then the platform. Errors list every image of the source:
 * ERR_NOT_FOUND (the selector names none), ERR_PLATFORM_MISMATCH (none for the platform among several),
 * ERR_AMBIGUOUS_IMAGE (images of different entries fit equally). One candidate left is returned as is:
 * the caller checks its platform (a warning or an error, depending on whether the platform was asked).
 */
export function selectImage<T extends ImageCandidate>(all: readonly T[], selector: string | undefined, wanted: Platform, where: string): T {
  const matched = matchSelector(all, selector);
  const listing = (): string => describeCandidates(all);
  const details = { images: all.map((c) => ({ names: c.names, digests: c.digests, configDigest: c.configDigest, platform: c.platform && formatPlatform(c.platform) })) };
  if (matched.length === 0) {
    const what = selector === undefined ? 'holds no image' : `has no image named "${selector}"`;
    throw new VmimgError(ErrorCode.NOT_FOUND, `${where}: ${what}; it holds ${listing() || 'nothing'}`, { details });
  }
  if (matched.length === 1) return matched[0]!;
  if (selector === undefined && new Set(matched.map((c) => c.names.join('\n'))).size > 1) {
    // Differently named images are different images: the platform does not choose between them.
    throw new VmimgError(ErrorCode.AMBIGUOUS_IMAGE, `${where}: holds several images: ${listing()}`, { hint: HINT, details });
  }
  const matcher = createMatcher(wanted);
  const ranks = matched.map((c) => matcher.rank(c.platform));
  const best = Math.min(...ranks.filter((r) => r >= 0));
  const fitting = matched.filter((_, i) => ranks[i] === best);
  if (fitting.length === 0) {
    throw new VmimgError(ErrorCode.PLATFORM_MISMATCH, `${where}: no image for ${formatPlatform(normalizePlatform(wanted))}; it holds ${describeCandidates(matched)}`, {
      hint: 'pick one of the platforms with --platform',
      details,
    });
  }
  if (fitting.some((c) => c.entry !== fitting[0]!.entry)) {
    const named = selector === undefined ? '' : ` named "${selector}"`;
    throw new VmimgError(ErrorCode.AMBIGUOUS_IMAGE, `${where}: holds several images${named} for ${formatPlatform(normalizePlatform(wanted))}: ${describeCandidates(fitting)}`, {
      hint: HINT,
      details,
    });
  }
  return fitting[0]!;
}
