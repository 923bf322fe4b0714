/**
 * `npm run bench`: vmimg against the tools people use today, side by side in one run, as ratios.
 *
 *  1. cold download of a Debian-size image's blobs from the real registry on loopback
 *     vs `curl` + `sha256sum` of the same blobs                                   (target ≤ 1.3×)
 *  2. cold pull vs node:zlib gunzip of the same layers (≤ 1.6×), `gzip -dc`, `skopeo copy` + `umoci unpack`
 *     (≤ 0.12×); warm re-pull (≤ 0.25 s); load of a docker-save tar vs node gunzip (≤ 1.3×) (bench/pull.ts)
 *  3. peak RSS while flattening a 1 GiB layer                                     (target < 200 MiB)
 *  4. ContainerFS on the pulled image: open, lookups, walk vs `find` (bench/vfs.ts)
 *  5. export to tar / initramfs vs `tar -c` (+ gzip) of umoci's rootfs, boot time under QEMU (bench/export.ts)
 *  6. peak RSS of loading 1 M entries, cold open of a 100k-entry .idx (bench/entries.ts)
 *  7. deep trees: tar / initramfs export time per MiB of path bytes at 4 000 vs 8 000 levels (bench/deep.ts)
 *  8. ext4 export vs `umoci unpack` + `mkfs.ext4 -d` and `tar -c`; boots from disk vs initramfs (bench/ext4.ts)
 *  9. push from the cache to a fresh registry vs `skopeo copy` from the OCI layout (≤ 0.7×); re-push ≤ 0.2 s (bench/push.ts)
 * 10. `vmimg serve` vs docker-registry in proxy mode: 4 cold clients (upstream bytes, wall on loopback and
 *     behind a 50 MB/s link), a warm hit vs the upstream straight (bench/serve.ts)
 * 11. gzip checkpoints: `.zran` size vs the compressed layers (≤ 1 %), cold pull with checkpoints built
 *     beside the flatten vs without (≤ 1.10×), `index build` vs node:zlib gunzip (bench/lazy.ts)
 *
 * `npm run bench -- pull export` runs only the sections named (download pull rss vfs export boot entries
 * deep ext4 push serve lazy); vfs needs pull's cache and umoci's rootfs. The Debian image is made once with debootstrap (minbase) + umoci and cached in bench/.cache/.
 * Needs root (debootstrap, umoci unpack), docker-registry, skopeo, umoci, curl; `bash .ci/run --setup-only`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BlobStore } from '../src/store/index.js';
import { RegistryClient } from '../src/registry/index.js';
import { parseManifestDocument, parseImageConfig, type ImageManifest } from '../src/manifest/index.js';
import { startRegistry } from '../test/helpers/registry.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { entriesBench } from './entries.js';
import { pullBench } from './pull.js';
import { lazyBench } from './lazy.js';
import { pushBench } from './push.js';
import { serveBench } from './serve.js';
import { loadAverage, PEAK_RSS, sh, sideBySide } from './util.js';

const SECTIONS = ['download', 'pull', 'rss', 'vfs', 'export', 'boot', 'entries', 'deep', 'ext4', 'push', 'serve', 'lazy'];
const only = process.argv.slice(2);
for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`unknown bench section ${s}; sections: ${SECTIONS.join(' ')}`);
/** True when `section` runs: all do when none is named on the command line. */
const want = (section: string): boolean => only.length === 0 || only.includes(section);

const results: string[] = [];
function report(line: string): void {
  console.log(line);
  results.push(line);
}

async function main(): Promise<void> {
  const layout = await debianLayout();
  const registry = await startRegistry();
  const work = await tmpDir('vmimg-bench-');
  try {
    sh('skopeo copy --quiet --dest-tls-verify=false "oci:$1:bench" "docker://$2/debian:bench"', layout, registry.host);
    const client = new RegistryClient();
    const ref = { registry: registry.host, repository: 'debian', tag: 'bench' };
    const doc = parseManifestDocument((await client.fetchManifest(ref)).bytes);
    if (doc.kind !== 'manifest') throw new Error('expected a single manifest');
    const manifest: ImageManifest = doc.manifest;
    const config = parseImageConfig(await client.fetchBlobBytes(ref, manifest.config));
    const total = manifest.layers.reduce((s, l) => s + l.size, 0);
    report(`started at ${new Date().toISOString()}, ${loadAverage()}`);
    report(`image: ${manifest.layers.length} layers, ${(total / 1e6).toFixed(1)} MB compressed, ${config.rootfs.diff_ids.length} diff_ids`);

    // 1. download into the blob store vs curl + sha256sum
    if (want('download')) {
      const urls = manifest.layers.map((l) => `${registry.url}/v2/debian/blobs/${l.digest}`);
      const dl = await sideBySide({
        curl: () => {
          const dir = join(work, 'curl');
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dir);
          sh('cd "$1" && shift && n=0 && for u in "$@"; do n=$((n+1)); curl -sf -o "b$n" "$u"; done && sha256sum b* > /dev/null', dir, ...urls);
        },
        vmimg: async () => {
          const dir = join(work, 'store');
          rmSync(dir, { recursive: true, force: true });
          const store = new BlobStore(dir);
          await Promise.all(manifest.layers.map((d) => store.fetchInto(d, (offset) => client.openBlob(ref, d, { offset }))));
        },
      });
      report(`download: curl+sha256sum ${dl.curl!.toFixed(0)} ms, vmimg ${dl.vmimg!.toFixed(0)} ms → ${(dl.vmimg! / dl.curl!).toFixed(2)}× (target ≤ 1.3×)`);
    }
    await client.close();

    // 2. cold pull vs node:zlib gunzip, gzip -dc and skopeo + umoci; warm re-pull; load of a docker-save tar
    const cacheDir = join(work, 'cache');
    if (want('pull')) for (const line of await pullBench({ host: registry.host, layout, layers: manifest.layers.map((l) => l.digest), work })) report(line);

    // 3. peak RSS flattening a 1 GiB layer
    if (want('rss')) report(flattenRss(work));

    // 4. ContainerFS on the pulled image vs find over umoci's rootfs of the same image
    if (want('vfs') && want('pull')) {
      const imageDir = join(cacheDir, 'images', readdirSync(join(cacheDir, 'images')).find((d) => /^[0-9a-f]{64}$/.test(d))!);
      const vfs = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'vfs.ts'), imageDir, join(work, 'bundle', 'rootfs')], {
        encoding: 'utf8',
      });
      for (const line of vfs.stdout.trim().split('\n')) report(line);
      if (vfs.status !== 0) report(`vfs bench failed: ${vfs.stderr}`);
    }

    // 5. exports (tar, initramfs) vs tar/gzip of umoci's rootfs, and boot-to-entrypoint under QEMU
    if (want('export') || want('boot')) {
      const parts = ['export', 'boot'].filter(want);
      const exp = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'export.ts'), ...parts], { encoding: 'utf8' });
      for (const line of exp.stdout.trim().split('\n')) report(line);
      if (exp.status !== 0) report(`export bench failed: ${exp.stderr}`);
    }

    // 6. memory and time that grow with entry counts
    if (want('entries')) for (const line of entriesBench()) report(line);

    // 7. deep trees: export time per byte of path stays flat as the depth doubles
    if (want('deep')) {
      const deep = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'deep.ts')], { encoding: 'utf8' });
      for (const line of deep.stdout.trim().split('\n')) report(line);
      if (deep.status !== 0) report(`deep-tree bench failed: ${deep.stderr}`);
    }

    // 8. ext4 export vs umoci unpack + mkfs.ext4 -d and tar -c; boots from disk vs initramfs
    if (want('ext4')) {
      const ext4 = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'ext4.ts')], { encoding: 'utf8' });
      for (const line of ext4.stdout.trim().split('\n')) report(line);
      if (ext4.status !== 0) report(`ext4 bench failed: ${ext4.stderr}`);
    }

    // 9. push from the cache vs skopeo copy from the OCI layout; re-push with everything there
    if (want('push')) for (const line of await pushBench({ host: registry.host, layout, work })) report(line);

    // 10. vmimg serve vs docker-registry's proxy mode (its own upstream registry)
    if (want('serve')) for (const line of await serveBench()) report(line);

    // 11. lazy foundations: .zran size vs the layers, pull --index-build vs pull, index build vs gunzip
    if (want('lazy')) await lazyBench(report);
  } finally {
    await registry.stop();
  }
  report(`finished at ${new Date().toISOString()}, ${loadAverage()}`);
  console.log('\nSummary\n' + results.map((l) => `  ${l}`).join('\n'));
}

/** Builds a 1 GiB (uncompressed) gzip layer and flattens it in a child process that reports its peak RSS. */
function flattenRss(work: string): string {
  const blob = join(work, 'big.tar.gz');
  if (!existsSync(blob)) {
    const src = join(work, 'big');
    mkdirSync(src, { recursive: true });
    // 16 × 64 MiB of incompressible-ish data (so the tar really is 1 GiB) plus 5k small files.
    sh('for i in $(seq 1 16); do head -c 67108864 /dev/urandom > "$1/f$i"; done; mkdir -p "$1/small"; for i in $(seq 1 5000); do echo "$i" > "$1/small/$i"; done', src);
    sh('tar -C "$1" -cf - . | gzip -1 > "$2"', src, blob);
    rmSync(src, { recursive: true, force: true });
  }
  // the script lives in the run's work dir (bench/.cache may be a symlink to a shared cache elsewhere)
  const script = `
    import { createReadStream } from 'node:fs';
    import { flattenLayer } from ${JSON.stringify(pathToFileURL(resolve('src', 'layer', 'flatten.ts')).href)};
    const info = await flattenLayer(createReadStream(${JSON.stringify(blob)}), { dir: ${JSON.stringify(join(work, 'big-layers'))} });
    console.log(JSON.stringify({ size: info.size, rss: ${PEAK_RSS} }));
  `;
  writeFileSync(join(work, 'rss.mts'), script);
  const out = spawnSync(process.execPath, ['--import', 'tsx', join(work, 'rss.mts')], { encoding: 'utf8' });
  if (out.status !== 0) return `flatten 1 GiB: failed: ${out.stderr.slice(0, 500)}`;
  const { size, rss } = JSON.parse(out.stdout.trim().split('\n').pop()!) as { size: number; rss: number };
  return `flatten ${(size / 2 ** 30).toFixed(2)} GiB layer: peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB (target < 200 MiB; blob ${(statSync(blob).size / 2 ** 20).toFixed(0)} MiB)`;
}

await main();
