// The QEMU command line vmimg boots with (what the boot tests then run for real under QEMU): no NIC to
// probe, amd64's PCI interrupt routing without ACPI's AML, the disk as a snapshot unless persisted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRootOptions, qemuCommand } from '../../src/boot/index.js';
import { isVmimgError } from '../../src/index.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

const append = (args: string[]): string[] => args[args.indexOf('-append') + 1]!.split(' ');

test('amd64: -nic none, pci=noacpi and no_timer_check; a disk is virtio-blk with snapshot=on unless persist', () => {
  const { bin, args } = qemuCommand('amd64', '/k/vmlinux', '/r.cpio.gz', { disk: { path: '/d,1.img', persist: false } });
  assert.equal(bin, 'qemu-system-x86_64');
  assert.equal(args[args.indexOf('-nic') + 1], 'none');
  assert.deepEqual(append(args).filter((a) => ['pci=noacpi', 'no_timer_check', 'rdinit=/init'].includes(a)), ['rdinit=/init', 'no_timer_check', 'pci=noacpi']);
  assert.equal(args[args.indexOf('-drive') + 1], 'file=/d,,1.img,format=raw,if=none,id=root,snapshot=on');
  const kept = qemuCommand('amd64', '/k/vmlinux', '/r.cpio.gz', { disk: { path: '/d.img', persist: true } }).args;
  assert.ok(!kept[kept.indexOf('-drive') + 1]!.includes('snapshot'));
});

test('arm64: virt machine, -nic none, kpti=0, no x86-only parameters', () => {
  const { bin, args } = qemuCommand('arm64', '/k/vmlinuz', '/r.cpio.gz');
  assert.equal(bin, 'qemu-system-aarch64');
  assert.deepEqual(args.slice(0, 4), ['-M', 'virt', '-cpu', 'cortex-a57']);
  assert.equal(args[args.indexOf('-nic') + 1], 'none');
  assert.ok(!append(args).some((a) => a === 'pci=noacpi' || a === 'no_timer_check'));
  assert.ok(append(args).includes('rdinit=/.vmimg/init'));
  assert.ok(append(args).includes('kpti=0'));
});

test('contradictory root options and a non-ext4 --disk are ERR_INVALID_ARGUMENT before QEMU starts', async () => {
  requireTools(['mkfs.ext4']);
  const dir = await tmpDir('vmimg-boot-root-');
  const [garbage, ext4] = [join(dir, 'garbage.img'), join(dir, 'made.img')];
  writeFileSync(garbage, randomBytes(1 << 20));
  writeFileSync(ext4, Buffer.alloc(4 << 20));
  await run('mkfs.ext4', ['-q', '-F', ext4]);
  const refused = async (o: Parameters<typeof checkRootOptions>[0], message: RegExp) =>
    assert.rejects(checkRootOptions(o), (err: unknown) => isVmimgError(err, 'ERR_INVALID_ARGUMENT') && message.test((err as Error).message));
  await refused({ persist: true }, /--persist needs --disk/);
  await refused({ root: 'initramfs', disk: ext4 }, /--root initramfs contradicts --disk/);
  await refused({ disk: garbage }, /is not an ext4 image/);
  await checkRootOptions({ disk: ext4, persist: true }); // made by mkfs.ext4: fine
  await checkRootOptions({ disk: join(dir, 'missing.img'), root: 'disk' }); // made by the boot
});
