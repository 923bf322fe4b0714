// A published `.zran` whose span does not inflate from its checkpoint (a wrong `bits`, as session 7's
// breaker H1 made; the span's sha256 still matches the blob) must not fail every read of that span: the
// lazy reader warns and fetches the blob whole (verified against the layer digest). The Debian test image
// (umoci, pushed by skopeo to the CNCF registry on loopback); the lazy export must equal the eager one.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { inflateSpan } from '../../src/lazy/span-inflate.js';
import { decodeZran, encodeZran, spanRange, type ZranIndex } from '../../src/lazy/zran-format.js';
import { debianArchive } from '../boot/debian-fixture.js';
import { expectExit } from '../cli/run.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let ref: string;

before(async () => {
  requireTools(['skopeo']);
  const [archive, reg] = await Promise.all([debianArchive('amd64'), startRegistry()]);
  registry = reg;
  ref = `${registry.host}/lazy/badspan:1`;
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}:latest`, `docker://${ref}`]);
});

after(async () => {
  await registry?.stop();
});

/** Gives a mid-byte checkpoint another `bits` under which its span does not inflate; returns the span. */
function breakOneSpan(index: ZranIndex, blob: Buffer): number {
  for (let i = 1; i < index.checkpoints.length; i++) {
    const c = index.checkpoints[i]!;
    if (c.bits === 0) continue;
    const r = spanRange(index, i);
    for (let bits = 1; bits < 8; bits++) {
      if (bits === c.bits) continue;
      const was = c.bits;
      c.bits = bits; // the span sha256 (prefixed by byte cOff-1 when bits > 0) still matches
      try {
        inflateSpan(index, i, blob.subarray(r.cStart, r.cEnd));
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_INVALID_INDEX') return i;
      }
      c.bits = was;
    }
  }
  throw new Error('no mid-byte checkpoint whose span a wrong bit offset breaks');
}

test('a published span that does not inflate: a warning, the whole blob, and the eager bytes', async () => {
  const eager = await tmpDir('vmimg-badspan-eager-');
  await expectExit(0, ['--cache-dir', eager, 'pull', '-q', '--index-build', ref]);
  const dir = join(eager, 'checkpoints', 'sha256');
  const name = readdirSync(dir).find((n) => n.endsWith('.zran'))!;
  const index = decodeZran(readFileSync(join(dir, name)));
  const blob = readFileSync(join(eager, 'blobs', 'sha256', index.digest.slice(7)));
  const broken = breakOneSpan(index, blob);
  writeFileSync(join(dir, name), encodeZran(index));
  await expectExit(0, ['--cache-dir', eager, 'index', 'push', '-q', ref]);

  const lazy = await tmpDir('vmimg-badspan-lazy-');
  await expectExit(0, ['--cache-dir', lazy, 'pull', '-q', '--lazy', ref]);
  const out = await tmpDir('vmimg-badspan-out-');
  const r = await expectExit(0, ['--cache-dir', lazy, 'export', join(out, 'lazy.tar'), ref]);
  assert.match(r.stderr, new RegExp(`span ${broken} of ${index.digest}.*fetching the whole blob`));
  await expectExit(0, ['--cache-dir', eager, 'export', '-q', join(out, 'eager.tar'), ref]);
  assert.ok(readFileSync(join(out, 'lazy.tar')).equals(readFileSync(join(out, 'eager.tar'))), 'the lazy export equals the eager one');
});
