import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createMatcher,
  formatPlatform,
  hostPlatform,
  hostPlatformFor,
  isAttestationPlatform,
  normalizePlatform,
  parsePlatform,
  selectBest,
  type Platform,
} from '../../src/platform/index.js';
import { isVmimgError } from '../../src/errors.js';

const parseCases: [string, string][] = [
  ['linux/arm64/v8', 'linux/arm64/v8'],
  ['linux/arm64', 'linux/arm64/v8'],
  ['arm64', 'linux/arm64/v8'],
  ['aarch64', 'linux/arm64/v8'],
  ['linux/aarch64', 'linux/arm64/v8'],
  ['arm64/v8', 'linux/arm64/v8'],
  ['linux/arm64/8', 'linux/arm64/v8'],
  ['linux/arm64/v8.0', 'linux/arm64/v8'],
  ['linux/arm64/v9', 'linux/arm64/v9'],
  ['x86_64', 'linux/amd64'],
  ['x86-64', 'linux/amd64'],
  ['amd64', 'linux/amd64'],
  ['linux/amd64', 'linux/amd64'],
  ['LINUX/AMD64', 'linux/amd64'],
  ['linux/amd64/v1', 'linux/amd64'],
  ['linux/amd64/v3', 'linux/amd64/v3'],
  ['amd64/v2', 'linux/amd64/v2'],
  ['arm', 'linux/arm/v7'],
  ['arm/v7', 'linux/arm/v7'],
  ['arm/7', 'linux/arm/v7'],
  ['linux/arm/v6', 'linux/arm/v6'],
  ['linux/arm', 'linux/arm/v7'],
  ['armhf', 'linux/arm/v7'],
  ['armel', 'linux/arm/v6'],
  ['armv7l', 'linux/arm/v7'],
  ['i386', 'linux/386'],
  ['386', 'linux/386'],
  ['i686', 'linux/386'],
  ['ppc64le', 'linux/ppc64le'],
  ['s390x', 'linux/s390x'],
  ['riscv64', 'linux/riscv64'],
  ['linux/riscv64', 'linux/riscv64'],
  ['windows/amd64', 'windows/amd64'],
  ['windows(10.0.17763)/amd64', 'windows(10.0.17763)/amd64'],
  [' linux/arm64 ', 'linux/arm64/v8'],
];

describe('parsePlatform: valid', () => {
  for (const [input, expected] of parseCases) {
    it(`${JSON.stringify(input)} -> ${expected}`, () => {
      const p = parsePlatform(input);
      assert.equal(formatPlatform(p), expected);
      assert.deepEqual(parsePlatform(formatPlatform(p)), p, 'formatted form parses back');
    });
  }
  it('"linux" alone means linux on the host architecture', () => {
    assert.deepEqual(parsePlatform('linux'), hostPlatform());
  });
});

const badCases: [string, string][] = [
  ['', 'empty'],
  ['   ', 'empty'],
  ['sparc', 'unknown architecture "sparc"'],
  ['linux/sparc', 'unknown architecture "sparc"'],
  ['plan10/amd64', 'unknown operating system or architecture "plan10"'],
  ['beos/amd64/v2', 'unknown operating system "beos"'],
  ['linux/arm64/v8/x', 'expected os/arch[/variant]'],
  ['linux//amd64', 'empty component'],
  ['linux/amd64/', 'empty component'],
  ['linux/arm/hard', 'unknown variant "hard"'],
  ['armhf/v6', 'already implies variant v7'],
  ['unknown/unknown', 'unknown operating system or architecture "unknown"'],
  ['unknown/unknown/v1', 'unknown operating system "unknown"'],
];

describe('parsePlatform: invalid', () => {
  for (const [input, message] of badCases) {
    it(`${JSON.stringify(input)} -> ${message}`, () => {
      assert.throws(
        () => parsePlatform(input),
        (err: unknown) => {
          assert.ok(isVmimgError(err, 'ERR_INVALID_PLATFORM'), `wrong error: ${String(err)}`);
          assert.ok(err.message.includes(message), `message "${err.message}" lacks "${message}"`);
          return true;
        },
      );
    });
  }
});

describe('normalizePlatform', () => {
  const cases: [Platform, Platform][] = [
    [{ os: 'linux', architecture: 'aarch64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    [{ os: 'Linux', architecture: 'x86_64', variant: 'v1' }, { os: 'linux', architecture: 'amd64' }],
    [{ os: 'linux', architecture: 'arm' }, { os: 'linux', architecture: 'arm', variant: 'v7' }],
    [{ os: 'linux', architecture: 'arm', variant: '6' }, { os: 'linux', architecture: 'arm', variant: 'v6' }],
    [{ os: 'unknown', architecture: 'unknown' }, { os: 'unknown', architecture: 'unknown' }],
    [{ os: 'macos', architecture: 'arm64' }, { os: 'darwin', architecture: 'arm64', variant: 'v8' }],
  ];
  for (const [input, expected] of cases) {
    it(formatPlatform(input), () => assert.deepEqual(normalizePlatform(input), expected));
  }
});

describe('hostPlatformFor', () => {
  const cases: [string, unknown, string][] = [
    ['x64', undefined, 'linux/amd64'],
    ['arm64', undefined, 'linux/arm64/v8'],
    ['arm', '7', 'linux/arm/v7'],
    ['arm', '6', 'linux/arm/v6'],
    ['ia32', undefined, 'linux/386'],
    ['ppc64', undefined, 'linux/ppc64le'],
    ['s390x', undefined, 'linux/s390x'],
    ['riscv64', undefined, 'linux/riscv64'],
  ];
  for (const [arch, armVersion, expected] of cases) {
    it(`${arch} -> ${expected}`, () => assert.equal(formatPlatform(hostPlatformFor(arch, armVersion)), expected));
  }
  it('hostPlatform() is a linux platform that parses', () => {
    const p = hostPlatform();
    assert.equal(p.os, 'linux');
    assert.deepEqual(parsePlatform(formatPlatform(p)), p);
  });
});

/** Candidate strings: `-` stands for "no platform" (counts as linux/amd64). */
function cand(s: string): { platform?: Platform } {
  if (s === '-') return {};
  const [os, architecture, variant] = s.split('/');
  return { platform: { os: os!, architecture: architecture!, ...(variant ? { variant } : {}) } };
}

// [wanted, candidate, matches?]
const matchCases: [string, string, boolean][] = [
  ['linux/arm64', 'linux/arm64/v8', true],
  ['linux/arm64/v8', 'linux/arm64', true],
  ['linux/arm64', 'linux/aarch64', true],
  ['linux/arm64', 'linux/arm64/v9', false],
  ['linux/arm64/v9', 'linux/arm64/v8', true],
  ['linux/arm64', 'linux/amd64', false],
  ['linux/arm64', 'linux/arm/v7', false],
  ['linux/amd64', 'linux/amd64', true],
  ['linux/amd64', 'linux/x86_64', true],
  ['linux/amd64', 'linux/amd64/v1', true],
  ['linux/amd64', 'linux/amd64/v2', false],
  ['linux/amd64/v3', 'linux/amd64/v2', true],
  ['linux/amd64/v3', 'linux/amd64', true],
  ['linux/amd64/v2', 'linux/amd64/v3', false],
  ['linux/amd64', '-', true],
  ['linux/arm64', '-', false],
  ['linux/amd64', 'linux/386', false],
  ['linux/arm/v7', 'linux/arm/v7', true],
  ['linux/arm/v7', 'linux/arm/v6', true],
  ['linux/arm/v7', 'linux/arm/v5', true],
  ['linux/arm/v7', 'linux/arm', true],
  ['linux/arm/v6', 'linux/arm/v7', false],
  ['linux/arm/v6', 'linux/arm', true],
  ['linux/riscv64', 'linux/riscv64', true],
  ['linux/riscv64', 'linux/riscv64/rva22', true],
  ['linux/amd64', 'unknown/unknown', false],
  ['linux/amd64', 'windows/amd64', false],
  ['linux/s390x', 'linux/s390x', true],
  ['linux/ppc64le', 'linux/ppc64', false],
];

describe('createMatcher().match', () => {
  for (const [wanted, candidate, expected] of matchCases) {
    it(`${wanted} ${expected ? 'accepts' : 'refuses'} ${candidate}`, () => {
      assert.equal(createMatcher(parsePlatform(wanted)).match(cand(candidate).platform), expected);
    });
  }
  it('unknown/unknown wanted matches nothing, not even itself', () => {
    const m = createMatcher({ os: 'unknown', architecture: 'unknown' });
    assert.equal(m.match({ os: 'unknown', architecture: 'unknown' }), false);
  });
  it('isAttestationPlatform', () => {
    assert.equal(isAttestationPlatform({ os: 'unknown', architecture: 'unknown' }), true);
    assert.equal(isAttestationPlatform({ os: 'linux', architecture: 'amd64' }), false);
    assert.equal(isAttestationPlatform(undefined), false);
  });
});

// [wanted, candidates, expected index]
const selectCases: [string, string[], number][] = [
  ['linux/arm64', ['linux/amd64', 'linux/arm64/v8', 'unknown/unknown'], 1],
  ['linux/arm64', ['linux/amd64', 'linux/arm64', 'linux/arm64/v8'], 1],
  ['linux/arm/v7', ['linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7'], 2],
  ['linux/arm/v7', ['linux/arm/v5', 'linux/arm/v6'], 1],
  ['linux/arm/v7', ['linux/arm/v5'], 0],
  ['linux/arm/v6', ['linux/arm', 'linux/arm/v6'], 1],
  ['linux/amd64/v3', ['linux/amd64', 'linux/amd64/v2', 'linux/amd64/v4'], 1],
  ['linux/amd64/v3', ['linux/amd64', 'linux/arm64'], 0],
  ['linux/amd64/v3', ['linux/amd64/v3', 'linux/amd64/v2'], 0],
  ['linux/amd64', ['unknown/unknown', '-'], 1],
  ['linux/amd64', ['linux/amd64/v2', 'linux/amd64'], 1],
  ['linux/riscv64', ['linux/amd64', 'linux/arm64'], -1],
  ['linux/amd64', ['unknown/unknown'], -1],
  ['linux/amd64', [], -1],
];

describe('selectBest', () => {
  for (const [wanted, candidates, expected] of selectCases) {
    it(`${wanted} from [${candidates.join(', ')}] -> ${expected}`, () => {
      assert.equal(selectBest(candidates.map(cand), parsePlatform(wanted)), expected);
    });
  }
  it('less() orders by preference', () => {
    const m = createMatcher(parsePlatform('linux/arm/v7'));
    assert.equal(m.less({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v5' }), true);
    assert.equal(m.less({ os: 'linux', architecture: 'arm', variant: 'v5' }, { os: 'linux', architecture: 'arm', variant: 'v6' }), false);
    assert.equal(m.less({ os: 'linux', architecture: 'arm', variant: 'v5' }, { os: 'linux', architecture: 'arm64' }), true);
  });
});
