/**
 * Platforms (`linux/arm64/v8`): parsing and normalising as containerd's `platforms` package does,
 * and matching with a preference order. Pure: no I/O.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { ARCH_ALIASES, normalizePlatform } from './normalize.js';
import type { Platform } from './types.js';

export type { Platform } from './types.js';
export { normalizePlatform } from './normalize.js';
export { createMatcher, selectBest, isAttestationPlatform, type PlatformMatcher } from './match.js';

const KNOWN_OS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'illumos', 'ios', 'js', 'linux',
  'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows',
]);

const KNOWN_ARCH = new Set([
  '386', 'amd64', 'arm', 'arm64', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le',
  'ppc64', 'ppc64le', 'riscv64', 's390x', 'wasm',
]);

const VARIANT = /^v\d+(\.\d+)?$/;

/**
 * Parses `os/arch[/variant]`, `arch[/variant]` or `os`, with aliases (`aarch64`, `x86_64`, `armhf`, ...).
 * A missing OS means linux (vmimg builds Linux VMs); `linux` alone means the host's architecture.
 * Throws ERR_INVALID_PLATFORM for anything it does not know.
 */
export function parsePlatform(s: string): Platform {
  if (typeof s !== 'string' || s.trim() === '') throw invalid(String(s ?? ''), 'platform is empty');
  const parts = s.trim().toLowerCase().split('/');
  if (parts.some((p) => p === '')) throw invalid(s, 'empty component');
  if (parts.length > 3) throw invalid(s, 'expected os/arch[/variant]');

  const first = parseOs(parts[0]!);
  if (parts.length === 1) {
    if (KNOWN_OS.has(first.os)) return { ...hostPlatform(), os: first.os, ...osVersion(first.osVersion) };
    return checked(s, { os: 'linux', architecture: parts[0]! });
  }
  if (parts.length === 2) {
    if (KNOWN_OS.has(first.os) || first.osVersion !== undefined) {
      return checked(s, { os: first.os, architecture: parts[1]!, ...osVersion(first.osVersion) });
    }
    const arch = ARCH_ALIASES[parts[0]!]?.[0] ?? parts[0]!;
    if (!KNOWN_ARCH.has(arch)) throw invalid(s, `unknown operating system or architecture "${parts[0]}"`);
    return checked(s, { os: 'linux', architecture: parts[0]!, variant: parts[1]! });
  }
  return checked(s, { os: first.os, architecture: parts[1]!, variant: parts[2]!, ...osVersion(first.osVersion) });
}

/** `linux/arm64/v8`, `linux/amd64`, `windows(10.0.17763)/amd64`. */
export function formatPlatform(p: Platform): string {
  const os = p.osVersion ? `${p.os}(${p.osVersion})` : p.os;
  return [os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

/** The platform of the machine we run on (OS is always linux: vmimg prepares Linux VMs). */
export function hostPlatform(): Platform {
  return hostPlatformFor(process.arch, (process.config.variables as Record<string, unknown>).arm_version);
}

/** hostPlatform() for a given `process.arch` value (exported for tests). */
export function hostPlatformFor(nodeArch: string, armVersion?: unknown): Platform {
  const map: Record<string, string> = {
    x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x',
    riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle',
  };
  const architecture = map[nodeArch] ?? nodeArch;
  const variant = architecture === 'arm' && armVersion !== undefined ? `v${String(armVersion)}` : undefined;
  return normalizePlatform({ os: 'linux', architecture, ...(variant ? { variant } : {}) });
}

function parseOs(part: string): { os: string; osVersion?: string } {
  const m = /^([a-z0-9]+)\(([^()]*)\)$/.exec(part);
  if (m) return { os: m[1]!, osVersion: m[2]! };
  return { os: part === 'macos' ? 'darwin' : part };
}

function osVersion(v: string | undefined): { osVersion?: string } {
  return v ? { osVersion: v } : {};
}

function checked(input: string, raw: Platform): Platform {
  if (raw.variant !== undefined && /^\d+(\.\d+)?$/.test(raw.variant)) raw = { ...raw, variant: `v${raw.variant}` };
  if (raw.variant !== undefined && !VARIANT.test(raw.variant)) {
    throw invalid(input, `unknown variant "${raw.variant}" (variants look like v7, v8, v3)`);
  }
  const p = normalizePlatform(raw);
  if (!KNOWN_OS.has(p.os)) throw invalid(input, `unknown operating system "${p.os}"`);
  if (!KNOWN_ARCH.has(p.architecture)) throw invalid(input, `unknown architecture "${p.architecture}"`);
  if (raw.variant !== undefined && ARCH_ALIASES[raw.architecture]?.[1] !== undefined && p.variant !== raw.variant) {
    throw invalid(input, `"${raw.architecture}" already implies variant ${p.variant}`);
  }
  return p;
}

function invalid(input: string, why: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_PLATFORM, `invalid platform "${input}": ${why}`, {
    hint: 'platforms look like linux/amd64, linux/arm64, linux/arm/v7, arm64 or x86_64',
  });
}
