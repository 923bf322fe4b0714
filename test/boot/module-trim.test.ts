// The stage one's kernel modules, trimmed to load fast under TCG (src/boot/module-trim.ts), judged by
// binutils' readelf on the real modules of both test kernels: no signature, the load-time-only sections
// no longer allocated, every other section header as it was. That the kernel loads them is the disk
// boot tests' part (test/boot/disk.test.ts, debian.test.ts).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { ensureModules } from '../../src/boot/index.js';
import { HIDDEN_SECTIONS, stripSignature, trimModule } from '../../src/boot/module-trim.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { testKernel } from './kernels.js';

const MAGIC = '~Module signature appended~\n';

/** readelf -S -W: [index, name, flags] per section header. */
async function sections(file: string): Promise<[number, string, string][]> {
  const text = await run('readelf', ['-S', '-W', file]);
  const out: [number, string, string][] = [];
  for (const line of text.split('\n')) {
    // "  [ 5] .text  PROGBITS  0000000000000000 000040 074c6e 00  AX  0   0 16"
    // the name may be empty (a hidden section): anchor on the type and the 16-digit address after it
    const m = /^\s*\[\s*(\d+)\]\s(.*?)\s*\b[A-Z_]+\s+[0-9a-f]{16}\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+([A-Za-z]*)\s+\d+/.exec(line);
    if (m) out.push([Number(m[1]), m[2]!.trim(), m[3]!]);
  }
  return out;
}

for (const arch of ['amd64', 'arm64'] as const) {
  test(`${arch}: the disk modules lose their signature and load-time-only sections, nothing else`, async () => {
    requireTools(['readelf']);
    const kernel = await testKernel(arch);
    const set = await ensureModules(dirname(kernel), basename(dirname(kernel)), arch);
    assert.ok(set.names.includes('ext4') && set.names.includes('virtio_blk'), set.names.join(' '));
    const dir = await tmpDir('vmimg-module-trim-');
    let hiddenSeen = 0;
    for (const file of set.files) {
      const ko = readFileSync(file);
      assert.equal(ko.toString('latin1', ko.length - MAGIC.length), MAGIC, `${file} is signed, as Debian ships it`);
      const trimmed = join(dir, `trimmed-${file.slice(file.lastIndexOf('/') + 1)}`);
      writeFileSync(trimmed, trimModule(ko));
      const t = readFileSync(trimmed);
      assert.ok(!t.toString('latin1').endsWith(MAGIC), `${trimmed} still signed`);
      assert.equal(t.length, stripSignature(ko).length);
      const [before, after] = [await sections(file), await sections(trimmed)];
      assert.ok(before.length > 10, `readelf listed the sections of ${file}`);
      assert.equal(after.length, before.length);
      for (const [i, name, flags] of before) {
        const [, nameAfter, flagsAfter] = after[i]!;
        if (HIDDEN_SECTIONS.includes(name)) {
          hiddenSeen++;
          assert.equal(nameAfter, '', `${name} of ${file}: name emptied`);
          assert.equal(flagsAfter, flags.replace('A', ''), `${name} of ${file}: no longer allocated`);
        } else {
          assert.deepEqual([nameAfter, flagsAfter], [name, flags], `section ${i} of ${file} unchanged`);
        }
      }
    }
    assert.ok(hiddenSeen >= set.files.length, `every module had a section to hide (${hiddenSeen})`);
  });
}

test('an unsigned or non-ELF file passes through with at most its signature removed', () => {
  const plain = Buffer.from('not an ELF file at all');
  assert.deepEqual(trimModule(plain), plain);
  const signed = Buffer.concat([Buffer.from('body'), Buffer.from('SIGNATURE'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]), Buffer.from(MAGIC)]);
  assert.deepEqual(stripSignature(signed), Buffer.from('body'));
});

test('two extractions of a cold module set at once take turns: one extracts, the other finds its set', async () => {
  const kernel = await testKernel('arm64');
  const pkg = basename(dirname(kernel));
  const deb = (await readdir(dirname(kernel))).find((n) => n.endsWith('.deb'))!;
  // a cold copy of the package dir: its .deb, no modules yet
  const pkgDir = join(await tmpDir('vmimg-module-race-'), pkg);
  await mkdir(pkgDir);
  await copyFile(join(dirname(kernel), deb), join(pkgDir, deb));
  const logs: string[] = [];
  const sets = await Promise.all([0, 1].map(() => ensureModules(pkgDir, pkg, 'arm64', (m) => logs.push(m))));
  assert.equal(logs.filter((m) => m.startsWith('extracting')).length, 1, logs.join('\n'));
  for (const set of sets) for (const file of set.files) assert.ok(readFileSync(file).length > 0, file);
  assert.deepEqual(sets[0]!.names, sets[1]!.names);
});
