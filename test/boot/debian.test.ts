// End to end on a small real Debian userland (glibc, dash, coreutils, util-linux setpriv; no busybox):
// the image's user (app, 1000:1000) is applied with setpriv, on amd64 and arm64 under QEMU (TCG), at
// the default 512 MiB; arm64 boots it from an ext4 disk.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bootImage } from '../../src/boot/index.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { requireTools, tmpDir } from '../helpers/tools.js';
import { debianArchive } from './debian-fixture.js';
import { testKernel, type Arch } from './kernels.js';

const QEMU: Record<Arch, string> = { amd64: 'qemu-system-x86_64', arm64: 'qemu-system-aarch64' };

describe('Debian packages image under QEMU', { concurrency: 2 }, () => {
  for (const arch of ['amd64', 'arm64'] as const) {
    // amd64 from an initramfs, arm64 from an ext4 disk (virtio-blk, stage one, switch_root)
    const root = arch === 'amd64' ? 'initramfs' : 'disk';
    test(`${arch} from ${root === 'disk' ? 'an ext4 disk' : 'an initramfs'}: dash runs the cmd as app (setpriv) in /home/app with the image env`, async () => {
      requireTools([QEMU[arch]]);
      const [archive, kernel, cacheDir] = await Promise.all([debianArchive(arch), testKernel(arch), tmpDir('vmimg-boot-debian-')]);
      const image = await loadFromTar(archive, { platform: parsePlatform(arch), cacheDir });
      const r = await bootImage(image, { kernel, root, timeoutMs: 300_000 });
      assert.equal(r.root, root);
      assert.equal(r.timedOut, false, r.output);
      assert.equal(r.guestOutput, `1000:1000 /home/app debian /bin/dash\ndebian packages ${arch}\n`, r.output);
      assert.equal(r.exitStatus, 0, r.output);
    });
  }
});
