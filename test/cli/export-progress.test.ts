// Progress of long exports (issue 11 item 9: the 8 s Debian initramfs export showed nothing). The
// exporters report entries and bytes after each entry; the CLI draws one line on a terminal (a real
// pseudo-terminal from util-linux's `script`) and nothing when stderr is a pipe, with -q or --json.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { exportInitramfs, exportTar, type ExportProgress } from '../../src/export/index.js';
import { loadFromTar, parsePlatform } from '../../src/index.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, BIN, expectExit } from './run.js';

test('tar and initramfs exports report growing entries and bytes, ending at the result', async () => {
  const image = await loadFromTar(AMD64_TAR, { cacheDir: await tmpDir('vmimg-export-progress-'), platform: parsePlatform('amd64') });
  for (const exporter of [exportTar, exportInitramfs]) {
    const seen: ExportProgress[] = [];
    const sink = new PassThrough();
    sink.resume();
    const r = await exporter(image, sink, { onProgress: (p) => seen.push({ ...p }) });
    assert.ok(seen.length > 10, `${exporter.name}: ${seen.length} reports`);
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i]!.entries > seen[i - 1]!.entries && seen[i]!.bytes >= seen[i - 1]!.bytes, `${exporter.name}: grows`);
    }
    assert.ok(seen.at(-1)!.bytes > 500_000, 'busybox is counted');
    assert.ok(seen.at(-1)!.entries <= r.entries && seen.at(-1)!.entries >= r.entries - 5, `${exporter.name}: ends near ${r.entries} (guest init entries aside)`);
  }
});

test('the CLI draws the progress line on a terminal only', async () => {
  requireTools(['script']);
  const dir = await tmpDir('vmimg-export-progress-cli-');
  const cache = join(dir, 'cache');
  const out = join(dir, 'root.cpio.gz');
  const cmd = `${process.execPath} ${BIN} --cache-dir ${cache} export ${out} ${AMD64_TAR}`;
  const tty = await run('script', ['-qec', cmd, '/dev/null']);
  assert.match(tty, new RegExp(`exporting ${out}: \\d+ entries, `), 'drawn on a terminal');
  assert.match(tty, /exported sha256:/);
  for (const extra of [[], ['-q'], ['--json']]) {
    const r = await expectExit(0, ['--cache-dir', cache, 'export', out, AMD64_TAR, '--force', ...extra]);
    assert.doesNotMatch(r.stderr, /exporting/, `no progress line with stderr a pipe ${extra.join(' ')}`);
  }
});
