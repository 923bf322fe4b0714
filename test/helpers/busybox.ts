// Busybox-based test images built by outside tools only: Debian's
// busybox-static package (amd64/arm64), umoci for layers/config, skopeo for
// pushing and archives. Nothing here uses vmimg's own code.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync, linkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cacheDir, memo, populateOnce } from './cache.js';
import { requireTools, run, tmpDir, removeNow } from './tools.js';
import { writeAttestationManifest, writeIndexIntoLayout, type IndexEntry } from './oci-index.js';

export { pushLayout, toDockerArchive, toOciArchive, layoutRefString, type LayoutRef } from './skopeo.js';
export { buildDockerSaveV25, type DockerSaveV25Options } from './docker-save.js';

export type Arch = 'amd64' | 'arm64';
export const ARCHES: readonly Arch[] = ['amd64', 'arm64'];

/** Fixed timestamp for every fixture file and config (reproducible digests). */
export const EPOCH_ISO = '1970-01-01T00:00:00Z';

/** Applets linked to busybox in every fixture image (/bin/sh is absolute, the rest relative). */
export const BUSYBOX_APPLETS = [
  'cat', 'echo', 'env', 'false', 'grep', 'head', 'id', 'ls', 'mkdir', 'mount', 'poweroff',
  'ps', 'readlink', 'rm', 'sed', 'sleep', 'stat', 'test', 'true', 'uname', 'wc', 'whoami',
] as const;

/**
 * Path to Debian's static busybox for `arch` (bin/busybox inside the extracted
 * .deb). The .deb is fetched with `apt-get download` into test/.cache/debs once.
 */
export function busyboxBinary(arch: Arch): Promise<string> {
  return memo(`busybox-bin:${arch}`, async () => {
    const deb = await busyboxDeb(arch);
    const name = deb.split('/').pop()!.replace(/\.deb$/, '');
    const dir = await populateOnce(join(cacheDir('busybox'), name), async (tmp) => {
      await run('dpkg-deb', ['-x', deb, tmp]);
    });
    const bin = join(dir, 'bin', 'busybox');
    if (!existsSync(bin)) throw new Error(`${deb} has no bin/busybox (extracted to ${dir})`);
    return bin;
  });
}

/** The cached busybox-static .deb for `arch`, downloading it if needed. */
export async function busyboxDeb(arch: Arch): Promise<string> {
  const debs = cacheDir('debs');
  const found = findDeb(debs, arch);
  if (found) return found;
  requireTools(['apt-get', 'dpkg-deb']);
  const tmp = await tmpDir(`vmimg-deb-${arch}-`);
  try {
    await run('apt-get', ['download', `busybox-static:${arch}`], { cwd: tmp });
  } catch (e) {
    throw new Error(
      `could not download Debian package busybox-static:${arch} with "apt-get download". ` +
        (arch === 'arm64' ? 'For arm64 first run: dpkg --add-architecture arm64 && apt-get update. ' : '') +
        `Or run: bash .ci/run (adds the architecture and pre-fetches both .debs into ${debs}).\n` +
        (e as Error).message,
    );
  }
  const got = findDeb(tmp, arch);
  if (!got) throw new Error(`apt-get download busybox-static:${arch} produced no .deb in ${tmp}`);
  const dest = join(debs, got.split('/').pop()!);
  if (!existsSync(dest)) renameOrCopy(got, dest);
  removeNow(tmp);
  return dest;
}

function findDeb(dir: string, arch: Arch): string | undefined {
  const names = readdirSync(dir).filter((n) => n.startsWith('busybox-static_') && n.endsWith(`_${arch}.deb`));
  names.sort();
  return names.length ? join(dir, names[names.length - 1]) : undefined;
}

function renameOrCopy(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    // different filesystems: copy to a temp name in the target dir, then rename
    const tmp = `${to}.tmp-${process.pid}`;
    writeFileSync(tmp, readFileSync(from));
    renameSync(tmp, to);
  }
}

/** One file-tree entry: text/bytes content, or a node with explicit kind/metadata. */
export type TreeNode =
  | string
  | Buffer
  | { content: string | Buffer; mode?: number; uid?: number; gid?: number }
  | { dir: true; mode?: number; uid?: number; gid?: number }
  | { symlink: string }
  | { hardlink: string };

/** Paths (relative, '/'-separated, e.g. 'etc/motd') → nodes. Parents are created as needed. */
export type TreeSpec = Record<string, TreeNode>;

/** A layer added on top of the busybox base, in order (each is one `umoci insert`). */
export type ExtraLayer =
  | { files?: TreeSpec; populate?: (dir: string) => void | Promise<void>; at?: string; opaque?: boolean }
  | { whiteout: string }
  /** A layer tar written by another tool (python's tarfile, GNU tar), added verbatim: `umoci raw add-layer`. */
  | { rawTar: string };

export interface BusyboxLayoutOptions {
  arch: Arch;
  /** Build into this layout dir (created with `umoci init` if it holds no layout yet). */
  dir?: string;
  tag?: string;
  extraLayers?: ExtraLayer[];
  /** Extra files for the base layer (merged over the default rootfs). */
  baseFiles?: TreeSpec;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
}

export interface BuiltImage {
  layout: string;
  tag: string;
  /** `layout:tag`, as skopeo's `oci:` and umoci's `--image` take it. */
  ref: string;
  arch: Arch;
  manifestDigest: string;
  manifestSize: number;
}

export const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'VMIMG_FIXTURE=busybox'];

/**
 * OCI layout with a busybox image: /bin/busybox + applet symlinks, /etc/passwd
 * and /etc/group (root, app=1000, nobody), /etc/arch holding the arch name,
 * then `extraLayers`. Memoised per process unless a layer has `populate`.
 */
export function buildBusyboxLayout(opts: BusyboxLayoutOptions): Promise<BuiltImage> {
  const hasFn = opts.extraLayers?.some((l) => 'populate' in l && l.populate);
  if (hasFn) return buildBusyboxLayoutUncached(opts);
  return memo(`busybox-layout:${JSON.stringify(opts)}`, () => buildBusyboxLayoutUncached(opts));
}

async function buildBusyboxLayoutUncached(opts: BusyboxLayoutOptions): Promise<BuiltImage> {
  requireTools(['umoci', 'dpkg-deb', 'touch', 'find']);
  const tag = opts.tag ?? `busybox-${opts.arch}`;
  const layout = opts.dir ?? join(await tmpDir('vmimg-layout-'), 'layout');
  if (!existsSync(join(layout, 'index.json'))) await run('umoci', ['init', '--layout', layout]);
  const ref = `${layout}:${tag}`;
  await run('umoci', ['new', '--image', ref]);
  const work = await tmpDir('vmimg-rootfs-');
  try {
    const base = join(work, 'base');
    await writeBaseRootfs(base, opts.arch);
    if (opts.baseFiles) writeTree(base, opts.baseFiles);
    await insertDir(ref, base, '/', false, 'busybox base');
    let i = 0;
    for (const layer of opts.extraLayers ?? []) await insertLayer(ref, layer, join(work, `layer${i++}`));
  } finally {
    removeNow(work);
  }
  await configure(ref, opts);
  return describe(layout, tag, opts.arch);
}

async function writeBaseRootfs(root: string, arch: Arch): Promise<void> {
  const bin = await busyboxBinary(arch);
  mkdirSync(join(root, 'bin'), { recursive: true });
  writeFileSync(join(root, 'bin', 'busybox'), readFileSync(bin), { mode: 0o755 });
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  symlinkSync('/bin/busybox', join(root, 'bin', 'sh'));
  for (const applet of BUSYBOX_APPLETS) symlinkSync('busybox', join(root, 'bin', applet));
  writeTree(root, {
    'etc/passwd':
      'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' +
      'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
    'etc/group': 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n',
    'etc/arch': `${arch}\n`,
    root: { dir: true, mode: 0o700 },
    tmp: { dir: true, mode: 0o1777 },
    'home/app': { dir: true, mode: 0o755, uid: 1000, gid: 1000 },
    proc: { dir: true },
    sys: { dir: true },
    dev: { dir: true },
  });
}

/** Materialise a TreeSpec under `root`, in key order (name a hardlink's target before the link). */
export function writeTree(root: string, spec: TreeSpec): void {
  mkdirSync(root, { recursive: true });
  for (const rel of Object.keys(spec)) {
    const node = spec[rel];
    const path = join(root, rel.replace(/^\/+/, ''));
    mkdirSync(dirname(path), { recursive: true });
    if (typeof node === 'string' || Buffer.isBuffer(node)) {
      writeFileSync(path, node);
    } else if ('symlink' in node) {
      symlinkSync(node.symlink, path);
    } else if ('hardlink' in node) {
      linkSync(join(root, node.hardlink.replace(/^\/+/, '')), path);
    } else {
      if ('dir' in node) mkdirSync(path, { recursive: true });
      else writeFileSync(path, node.content);
      // chown clears setuid/setgid, so ownership first, then the mode.
      if ((node.uid !== undefined || node.gid !== undefined) && process.getuid?.() === 0) {
        chownSync(path, node.uid ?? 0, node.gid ?? 0);
      }
      if (node.mode !== undefined) chmodSync(path, node.mode);
    }
  }
}

async function insertLayer(ref: string, layer: ExtraLayer, dir: string): Promise<void> {
  if ('rawTar' in layer) {
    await run('umoci', ['raw', 'add-layer', '--image', ref, ...historyArgs(`raw ${layer.rawTar}`), layer.rawTar]);
    return;
  }
  if ('whiteout' in layer) {
    await run('umoci', ['insert', '--image', ref, ...historyArgs(`whiteout ${layer.whiteout}`), '--whiteout', layer.whiteout]);
    return;
  }
  mkdirSync(dir, { recursive: true });
  if (layer.files) writeTree(dir, layer.files);
  if (layer.populate) await layer.populate(dir);
  await insertDir(ref, dir, layer.at ?? '/', layer.opaque ?? false, `insert ${layer.at ?? '/'}`);
}

/** `umoci insert` after pinning every mtime to the epoch (reproducible layers). */
async function insertDir(ref: string, src: string, dest: string, opaque: boolean, what: string): Promise<void> {
  await run('find', [src, '-exec', 'touch', '-h', '-d', '@0', '{}', '+']);
  const args = ['insert', '--image', ref, ...historyArgs(what)];
  if (opaque) args.push('--opaque');
  await run('umoci', [...args, src, dest]);
}

function historyArgs(createdBy: string): string[] {
  return ['--history.created', EPOCH_ISO, '--history.created_by', `vmimg-test: ${createdBy}`];
}

async function configure(ref: string, opts: BusyboxLayoutOptions): Promise<void> {
  const args = ['config', '--image', ref, '--no-history', '--created', EPOCH_ISO];
  args.push('--architecture', opts.arch, '--os', 'linux');
  for (const e of opts.entrypoint ?? ['/bin/sh']) args.push('--config.entrypoint', e);
  for (const c of opts.cmd ?? ['-c', 'cat /etc/arch']) args.push('--config.cmd', c);
  for (const e of opts.env ?? DEFAULT_ENV) args.push('--config.env', e);
  args.push('--config.workingdir', opts.workingDir ?? '/');
  args.push('--config.user', opts.user ?? 'root');
  for (const [k, v] of Object.entries(opts.labels ?? {})) args.push('--config.label', `${k}=${v}`);
  await run('umoci', args);
}

function describe(layout: string, tag: string, arch: Arch): BuiltImage {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: IndexEntry[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`umoci left no "${tag}" entry in ${layout}/index.json`);
  return { layout, tag, ref: `${layout}:${tag}`, arch, manifestDigest: entry.digest, manifestSize: entry.size };
}

export interface MultiArchImage {
  layout: string;
  tag: string;
  ref: string;
  indexDigest: string;
  images: Record<Arch, BuiltImage>;
}

export interface MultiArchOptions {
  dir?: string;
  /** Also list a BuildKit-style attestation manifest (platform unknown/unknown) for each image. */
  attestations?: boolean;
}

/**
 * One OCI layout holding an amd64 and an arm64 busybox image (tags TAG-amd64,
 * TAG-arm64) plus an OCI image index over both, tagged TAG
 * (platforms linux/amd64 and linux/arm64 variant v8; then attestations if asked).
 */
export function buildMultiArchLayout(tag = 'multi', opts: MultiArchOptions = {}): Promise<MultiArchImage> {
  return memo(`multiarch:${tag}:${JSON.stringify(opts)}`, async () => {
    const layout = opts.dir ?? join(await tmpDir('vmimg-multi-'), 'layout');
    const amd64 = await buildBusyboxLayoutUncached({ arch: 'amd64', dir: layout, tag: `${tag}-amd64` });
    const arm64 = await buildBusyboxLayoutUncached({ arch: 'arm64', dir: layout, tag: `${tag}-arm64` });
    const manifests = [
      { image: amd64, platform: { architecture: 'amd64', os: 'linux' } },
      { image: arm64, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
    ].map(({ image, platform }) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifestSize,
      platform,
    })) as IndexEntry[];
    if (opts.attestations) {
      for (const image of [amd64, arm64]) manifests.push(writeAttestationManifest(layout, image.manifestDigest));
    }
    const indexDigest = writeIndexIntoLayout(layout, tag, manifests);
    return { layout, tag, ref: `${layout}:${tag}`, indexDigest, images: { amd64, arm64 } };
  });
}
