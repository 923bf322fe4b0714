/** Choosing a platform's manifest from an index, and checking a single-platform image's config. */
import { ErrorCode, VmimgError } from '../errors.js';
import { createMatcher, formatPlatform, isAttestationPlatform, normalizePlatform, selectBest } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { isIndexMediaType, isManifestMediaType } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex } from './types.js';

/** BuildKit marks provenance/SBOM manifests with this annotation (and `unknown/unknown`). */
export const ATTESTATION_ANNOTATION = 'vnd.docker.reference.type';

export function isAttestation(desc: Descriptor): boolean {
  return isAttestationPlatform(desc.platform) || desc.annotations?.[ATTESTATION_ANNOTATION] === 'attestation-manifest';
}

/** The platforms an index offers, formatted, attestations left out, duplicates once. */
export function offeredPlatforms(index: ImageIndex): string[] {
  const seen = new Set<string>();
  for (const d of index.manifests) {
    if (isAttestation(d) || !isRunnable(d)) continue;
    if (d.platform) seen.add(formatPlatform(d.platform));
    else if (isManifestMediaType(d.mediaType)) seen.add('linux/amd64 (unlabelled)');
    else seen.add('nested index (unlabelled)');
  }
  return [...seen];
}

/**
 * Picks the descriptor for `wanted` from an index (best match in containerd's preference order;
 * the first among equals). The result may itself be an index — a nested index, either labelled
 * with a matching platform or unlabelled when no labelled entry matches: the caller fetches it,
 * parses it and calls this again. Throws ERR_PLATFORM_MISMATCH listing what the index offers.
 */
export function choosePlatformManifest(index: ImageIndex, wanted: Platform): Descriptor {
  const candidates = index.manifests.filter((d) => isRunnable(d) && !isAttestation(d) && !isUnlabelledIndex(d));
  const best = selectBest(candidates, wanted);
  if (best >= 0) return candidates[best]!;
  const nested = index.manifests.find((d) => isUnlabelledIndex(d) && !isAttestation(d));
  if (nested) return nested;
  const available = offeredPlatforms(index);
  const want = formatPlatform(normalizePlatform(wanted));
  throw new VmimgError(
    ErrorCode.PLATFORM_MISMATCH,
    `image has no ${want} variant; it offers ${available.length > 0 ? available.join(', ') : 'no runnable platforms'}`,
    { hint: 'pick one of the offered platforms with --platform', details: { wanted: want, available } },
  );
}

/** The platform a config names, as written (not normalised; `variant` only when it names one). */
export function configPlatform(config: { os: string; architecture: string; variant?: string }): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/**
 * For a single-platform image: does its config fit `wanted`? Variants are tolerated as in matching
 * (a config without a variant fits any variant). Throws ERR_PLATFORM_MISMATCH when `explicit` (the
 * user asked for that platform); otherwise returns false so the caller may warn.
 */
export function checkConfigPlatform(config: ImageConfig, wanted: Platform, explicit: boolean): boolean {
  // Raw, not normalised: the matcher must see that a config named no variant.
  const have = configPlatform(config);
  if (createMatcher(wanted).match(have)) return true;
  if (!explicit) return false;
  const want = formatPlatform(normalizePlatform(wanted));
  const offered = formatPlatform(normalizePlatform(have));
  throw new VmimgError(ErrorCode.PLATFORM_MISMATCH, `image is for ${offered} only, not ${want}`, {
    hint: `use --platform ${offered}, or pick an image built for ${want}`,
    details: { wanted: want, available: [offered] },
  });
}

function isRunnable(d: Descriptor): boolean {
  return isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType);
}

function isUnlabelledIndex(d: Descriptor): boolean {
  return isIndexMediaType(d.mediaType) && d.platform === undefined;
}
