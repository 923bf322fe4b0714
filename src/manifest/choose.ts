/**
 * Attestation entries and checking a single-platform image's config. Choosing among an index's entries
 * is the index walk's (src/content/walk.ts, with src/content/select.ts).
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { createMatcher, formatPlatform, isAttestationPlatform, normalizePlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import type { Descriptor, ImageConfig } from './types.js';

/** BuildKit marks provenance/SBOM manifests with this annotation (and `unknown/unknown`). */
export const ATTESTATION_ANNOTATION = 'vnd.docker.reference.type';

export function isAttestation(desc: Descriptor): boolean {
  return isAttestationPlatform(desc.platform) || desc.annotations?.[ATTESTATION_ANNOTATION] === 'attestation-manifest';
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
