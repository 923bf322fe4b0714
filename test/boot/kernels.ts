// Stock Debian kernels for the boot tests, fetched with outside tools (apt-get download, dpkg-deb,
// GNU tar) into test/.cache/kernels/<package>/vmlinuz: the layout src/boot/kernel.ts reads.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, memo, populateOnce } from '../helpers/cache.js';
import { requireTools, run } from '../helpers/tools.js';

export type Arch = 'amd64' | 'arm64';

export function kernelDir(): string {
  return cacheDir('kernels');
}

function cached(arch: Arch): string | undefined {
  const names = readdirSync(kernelDir()).filter((n) => n.startsWith('linux-image-') && n.endsWith(`-${arch}`)).sort();
  const hit = names.reverse().find((n) => existsSync(join(kernelDir(), n, 'vmlinuz')));
  return hit ? join(kernelDir(), hit, 'vmlinuz') : undefined;
}

/** Path of a vmlinuz for `arch`, downloading the current Debian kernel package once. */
export function testKernel(arch: Arch): Promise<string> {
  return memo(`kernel:${arch}`, async () => {
    const hit = cached(arch);
    if (hit) return hit;
    requireTools(['apt-get', 'dpkg-deb', 'tar']);
    const meta = arch === 'amd64' ? 'linux-image-amd64' : 'linux-image-arm64:arm64';
    const deps = await run('apt-cache', ['depends', meta]).catch(() => '');
    const pkg = /Depends:\s*(linux-image-[0-9][^\s:]*)/.exec(deps)?.[1];
    if (!pkg) {
      throw new Error(
        `apt-cache names no kernel behind ${meta}. ` +
          (arch === 'arm64' ? 'Run: dpkg --add-architecture arm64 && apt-get update. ' : 'Run: apt-get update. ') +
          'Or run: bash .ci/run (pre-fetches both kernels into test/.cache/kernels).',
      );
    }
    const dir = await populateOnce(join(kernelDir(), pkg), async (tmp) => {
      await run('apt-get', ['download', '-q', arch === 'arm64' ? `${pkg}:arm64` : pkg], { cwd: tmp });
      const deb = readdirSync(tmp).find((n) => n.endsWith('.deb'));
      if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${tmp}`);
      await run('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar -xO --wildcards './boot/vmlinuz-*' > vmlinuz && rm '${deb}'`], { cwd: tmp });
    });
    return join(dir, 'vmlinuz');
  });
}
