/** Platform spelling normalisation (aliases, default variants), after containerd. Pure. */
import type { Platform } from './types.js';

/** Architecture aliases, as containerd and `uname -m` spell them. Values are [arch, forced variant]. */
export const ARCH_ALIASES: Readonly<Record<string, [string, string?]>> = {
  i386: ['386'], i486: ['386'], i586: ['386'], i686: ['386'], x86: ['386'],
  x86_64: ['amd64'], 'x86-64': ['amd64'], x64: ['amd64'],
  aarch64: ['arm64'], armv8: ['arm64'], armv8l: ['arm', 'v8'],
  armhf: ['arm', 'v7'], armv7: ['arm', 'v7'], armv7l: ['arm', 'v7'],
  armel: ['arm', 'v6'], armv6: ['arm', 'v6'], armv6l: ['arm', 'v6'], armv5: ['arm', 'v5'],
  ppc64el: ['ppc64le'], riscv: ['riscv64'], loongarch64: ['loong64'],
};

/**
 * Normalises spelling without judging: aliases resolved, `arm64` gets variant `v8`, `arm` defaults
 * to `v7`, `amd64/v1` is plain `amd64`, bare numeric variants get their `v`. Never throws, so it can
 * be applied to whatever an index offers (including `unknown/unknown`).
 */
export function normalizePlatform(p: Platform): Platform {
  const os = (p.os ?? '').toLowerCase() === 'macos' ? 'darwin' : (p.os ?? '').toLowerCase();
  let architecture = (p.architecture ?? '').toLowerCase();
  let variant = p.variant ? p.variant.toLowerCase() : undefined;
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias[0];
    if (alias[1] !== undefined) variant = alias[1];
  }
  if (variant !== undefined && /^\d+(\.\d+)?$/.test(variant)) variant = `v${variant}`;
  if (architecture === 'arm64') {
    if (variant === undefined || variant === 'v8.0') variant = 'v8';
    if (variant === 'v9.0') variant = 'v9';
  } else if (architecture === 'arm') {
    variant ??= 'v7';
  } else if (architecture === 'amd64' && variant === 'v1') {
    variant = undefined;
  }
  return {
    os,
    architecture,
    ...(variant !== undefined && variant !== '' ? { variant } : {}),
    ...(p.osVersion ? { osVersion: p.osVersion } : {}),
  };
}

