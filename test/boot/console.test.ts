// The console readers of a boot, without QEMU: the guest output splitter (every way of cutting the
// console into chunks gives the same output, and nothing waits for the end), escape stripping, the
// cause of a failed boot, and the --kernel check against the real Debian kernels of both arches.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { bootFailureCause, checkKernelFile, GuestOutputSplitter, parseGuestOutput, stripTerminalEscapes } from '../../src/boot/index.js';
import { tmpDir } from '../helpers/tools.js';
import { testKernel } from './kernels.js';

const CONSOLE = '\x1b[2J\x1b[H SeaBIOS\r\n[    0.5] Run /.vmimg/init as init process\r\n\r\nvmimg: start\r\none\r\nvmimg: exit statu\r\npartial';
const ENDING = ' line\r\n\r\nvmimg: exit status 7\r\n[    2.1] reboot: Power down\r\n';

test('the guest output splitter gives the same text for every chunking, and passes lines on before the end', () => {
  const full = CONSOLE + ENDING;
  const want = parseGuestOutput(full);
  assert.equal(want, 'one\nvmimg: exit statu\npartial line\n');
  for (let cut = 1; cut < full.length; cut++) {
    for (const step of [1, 3, 7, full.length]) {
      const s = new GuestOutputSplitter();
      let out = '';
      for (let at = 0; at < full.length; at += at === 0 ? cut : step) out += s.push(full.slice(at, at === 0 ? cut : at + step));
      out += s.flush();
      assert.equal(out, want, `first chunk ${cut}, then ${step}`);
    }
  }
  const s = new GuestOutputSplitter();
  assert.equal(s.push(CONSOLE), 'one\nvmimg: exit statu\npartial', 'everything certain is passed on at once');
  assert.equal(s.started, true);
  assert.equal(s.push('\r\nvmimg: exit sta'), '', 'a line that may become the exit line is held');
  assert.equal(s.push('tus 0\r\n'), '');
});

test('terminal escapes and control characters are removed, tabs and newlines kept', () => {
  assert.equal(stripTerminalEscapes('\x1b[?2004h\x1b[1;31mred\x1b[0m\tok\n\x1b]0;title\x07bell\x07\x1b(B\x1bcback\bspace\r\n'), 'red\tok\nbellbackspace\n');
});

test('a failed boot is explained by the kernel, QEMU and init lines that name a cause, else the last lines', () => {
  const panic = [
    '[    1.234567] Initramfs unpacking failed: write error',
    '[    2.000000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)',
    '[    2.000001] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-57-amd64',
  ].join('\r\n');
  assert.deepEqual(bootFailureCause(panic), [
    'Initramfs unpacking failed: write error',
    'Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)',
  ]);
  assert.deepEqual(bootFailureCause("qemu-system-x86_64: -kernel /x: Could not open '/x': No such file"), [
    "qemu-system-x86_64: -kernel /x: Could not open '/x': No such file",
  ]);
  assert.deepEqual(bootFailureCause('a\nb\n\nc\nd\ne\n'), ['b', 'c', 'd', 'e']);
});

test('--kernel is checked before QEMU: a missing file, a kernel of the other arch, a file that is no kernel', async () => {
  const [amd64, arm64, dir] = await Promise.all([testKernel('amd64'), testKernel('arm64'), tmpDir('vmimg-kernel-check-')]);
  await checkKernelFile(amd64, 'amd64');
  await checkKernelFile(arm64, 'arm64');
  const rejects = (p: Promise<unknown>, code: string, re: RegExp) =>
    assert.rejects(p, (e: unknown) => isVmimgError(e) && e.code === code && re.test(e.message));
  await rejects(checkKernelFile(join(dir, 'missing'), 'amd64'), 'ERR_NOT_FOUND', /missing: no such file/);
  await rejects(checkKernelFile(arm64, 'amd64'), 'ERR_PLATFORM_MISMATCH', /is an arm64 kernel, the guest is amd64/);
  await rejects(checkKernelFile(amd64, 'arm64'), 'ERR_PLATFORM_MISMATCH', /is an amd64 kernel, the guest is arm64/);
  await writeFile(join(dir, 'text'), 'not a kernel\n');
  await rejects(checkKernelFile(join(dir, 'text'), 'arm64'), 'ERR_INVALID_ARGUMENT', /not a Linux kernel image for arm64/);
  await rejects(checkKernelFile(dir, 'amd64'), 'ERR_INVALID_ARGUMENT', /is not a file/);
});
