/**
 * The manifest/config size caps and the index walk's bounds are settings (`"limits"` in the config
 * file): each refusal is ERR_TOO_LARGE (or ERR_INVALID_MANIFEST for depth) naming the setting, and
 * raising it lets a trusted source through. Inputs: umoci layouts; a manifest over the 4 MiB default
 * written by python3 (a copy of the umoci manifest with a 5 MiB annotation, re-hashed into the layout).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxLayout, buildMultiArchLayout, type BuiltImage, type MultiArchImage } from '../helpers/busybox.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit, vmimg } from '../cli/run.js';
import { loadUserConfig } from '../../src/config.js';

let image: BuiltImage;
let multi: MultiArchImage;
let work: string;
let big: string;

/** Rewrites the manifest tagged `tag` in `layout` with a `pad`-byte annotation (python3: hashes and index.json). */
const PAD_MANIFEST = `
import hashlib, json, os, sys
layout, tag, pad = sys.argv[1], sys.argv[2], int(sys.argv[3])
index_path = os.path.join(layout, 'index.json')
index = json.load(open(index_path))
entry = next(m for m in index['manifests'] if m.get('annotations', {}).get('org.opencontainers.image.ref.name') == tag)
manifest = json.load(open(os.path.join(layout, 'blobs', 'sha256', entry['digest'][7:])))
manifest.setdefault('annotations', {})['padding'] = 'x' * pad
data = json.dumps(manifest).encode()
digest = hashlib.sha256(data).hexdigest()
open(os.path.join(layout, 'blobs', 'sha256', digest), 'wb').write(data)
entry['digest'], entry['size'] = 'sha256:' + digest, len(data)
json.dump(index, open(index_path, 'w'))
`;

before(async () => {
  requireTools(['umoci', 'python3']);
  [image, multi, work] = await Promise.all([buildBusyboxLayout({ arch: 'amd64', tag: 'doclimits' }), buildMultiArchLayout('doclimits'), tmpDir('vmimg-doc-limits-')]);
  big = join(work, 'big');
  cpSync(image.layout, big, { recursive: true });
  await run('python3', ['-c', PAD_MANIFEST, big, image.tag, String(5 * 1024 * 1024)]);
});

/** Runs `vmimg --cache-dir … ARGS` with a config file holding `limits`. */
async function withLimits(limits: Record<string, unknown>, args: string[]) {
  const config = join(await tmpDir('vmimg-doc-limits-cfg-'), 'config.json');
  writeFileSync(config, JSON.stringify({ limits }));
  return vmimg(['--cache-dir', join(work, 'cache'), ...args], { env: { VMIMG_CONFIG: config } });
}

describe('document limits as settings', () => {
  for (const [setting, limits, code, exit] of [
    ['maxWalkEntries', { maxWalkEntries: 1 }, 'ERR_TOO_LARGE', 6],
    ['maxWalkDocuments', { maxWalkDocuments: 1 }, 'ERR_TOO_LARGE', 6],
    ['maxIndexDepth', { maxIndexDepth: 0 }, 'ERR_INVALID_MANIFEST', 1], // as a loop of indexes is
    ['maxConfigBytes', { maxConfigBytes: 100 }, 'ERR_TOO_LARGE', 6],
  ] as const) {
    it(`${setting} below what the multi-arch index needs: ${code} naming the setting, exit ${exit}`, async () => {
      const r = await withLimits(limits, ['cat', `oci:${multi.ref}`, '/etc/arch', '--arch', 'arm64']);
      assert.equal(r.code, exit, r.stderr);
      assert.match(r.stderr, new RegExp(`${code}.*${setting}`));
      assert.match(r.stderr, new RegExp(`hint: .*"limits": \\{"${setting}"`));
    });
  }

  it('a manifest over the 4 MiB default is refused naming maxManifestBytes; raised, it loads', async () => {
    const refused = await withLimits({}, ['cat', `oci:${big}:${image.tag}`, '/etc/arch']);
    assert.equal(refused.code, 6, refused.stderr);
    assert.match(refused.stderr, /ERR_TOO_LARGE.*maxManifestBytes/);
    const ok = await withLimits({ maxManifestBytes: '8M' }, ['cat', `oci:${big}:${image.tag}`, '/etc/arch']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'amd64\n');
  });

  it('a bad or unknown setting is named in one line, exit 2', async () => {
    const zero = await withLimits({ maxWalkEntries: 0 }, ['images']);
    assert.equal(zero.code, 2, zero.stderr);
    assert.match(zero.stderr, /maxWalkEntries must be a positive whole number/);
    const unknown = await withLimits({ maxManifests: 3 }, ['images']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown limit "maxManifests" \(known: .*maxManifestBytes.*maxWalkDocuments/);
  });

  it('a time limit is written as a time: "10s" is taken, a size is refused naming the setting', async () => {
    const ok = await withLimits({ lazyLookupBudgetMs: '10s' }, ['images']);
    assert.equal(ok.code, 0, ok.stderr);
    const config = join(await tmpDir('vmimg-doc-limits-time-'), 'config.json');
    for (const [text, ms] of [['10s', 10_000], ['250ms', 250], ['1.5min', 90_000], [4000, 4000]] as const) {
      writeFileSync(config, JSON.stringify({ limits: { lazyLookupBudgetMs: text } }));
      assert.equal((await loadUserConfig({ VMIMG_CONFIG: config })).limits?.lazyLookupBudgetMs, ms, String(text));
    }
    const size = await withLimits({ lazyLookupBudgetMs: '5M' }, ['images']);
    assert.equal(size.code, 2, size.stderr);
    assert.match(size.stderr, /"lazyLookupBudgetMs" must be a time such as 10s/);
    // Node's timers cap at 2^31-1 ms: a longer budget would have fired at once
    const long = await withLimits({ lazyLookupBudgetMs: 2 ** 31 }, ['images']);
    assert.equal(long.code, 2, long.stderr);
    assert.match(long.stderr, /lazyLookupBudgetMs must be at most 2147483647 ms/);
  });

  it('the defaults let the same images through', async () => {
    await expectExit(0, ['--cache-dir', join(work, 'cache-default'), 'cat', `oci:${multi.ref}`, '/etc/arch', '--arch', 'arm64']);
  });
});
