// Compares two extracted trees (ours, extracted by GNU tar / GNU cpio, and umoci unpack's rootfs):
// type, mode, owner, size, content, link target, rdev, hardlink groups, and optionally xattrs.
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flattenLayer } from '../../src/layer/flatten.js';
import { ContainerFS } from '../../src/vfs/index.js';
import type { BuiltImage } from '../helpers/busybox.js';
import { layoutLayers, walkReference, xattrsOf, type RefEntry } from '../helpers/layers.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

/** Flattens a layout image's layers into an image directory and opens it (no vmimg loader involved). */
export async function openFlattened(image: BuiltImage): Promise<ContainerFS> {
  const dir = await tmpDir('vmimg-export-image-');
  const layers = layoutLayers(image.layout, image.manifestDigest);
  for (const l of layers) {
    await flattenLayer(createReadStream(l.path), { dir, expectedDiffId: l.diffId, expectedDigest: l.digest });
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ layers: layers.map((l) => l.diffId) }));
  return ContainerFS.open(dir);
}

export async function umociRootfs(image: BuiltImage): Promise<string> {
  requireTools(['umoci']);
  const bundle = join(await tmpDir('vmimg-export-unpack-'), 'bundle');
  await run('umoci', ['unpack', '--image', image.ref, bundle]);
  return join(bundle, 'rootfs');
}

function describe(e: RefEntry, groups: Map<number, string[]>): Record<string, unknown> {
  const d: Record<string, unknown> = { kind: e.kind, mode: (e.mode & 0o7777).toString(8), uid: e.uid, gid: e.gid };
  if (e.kind === 'file') Object.assign(d, { size: e.size, sha256: e.sha256, links: groups.get(e.ino)!.join(',') });
  if (e.kind === 'symlink') d.link = e.link!.toString('latin1');
  if (e.kind === 'char' || e.kind === 'block') d.rdev = `${e.rdevMajor}:${e.rdevMinor}`;
  return d;
}

/** path → description, with each file's hardlink group named by its sorted paths. */
export function describeTree(root: string, ignore: (path: string) => boolean = () => false): Map<string, Record<string, unknown>> {
  const ref = walkReference(root);
  const groups = new Map<number, string[]>();
  for (const [path, e] of ref) if (e.kind === 'file' && !ignore(path)) groups.set(e.ino, [...(groups.get(e.ino) ?? []), path].sort());
  const out = new Map<string, Record<string, unknown>>();
  for (const [path, e] of [...ref].sort(([a], [b]) => (a < b ? -1 : 1))) if (!ignore(path)) out.set(path, describe(e, groups));
  return out;
}

/** Differences between two trees as readable lines (empty when equal). */
export function diffTrees(got: Map<string, Record<string, unknown>>, want: Map<string, Record<string, unknown>>): string[] {
  const diffs: string[] = [];
  for (const [path, w] of want) {
    const g = got.get(path);
    if (!g) diffs.push(`${JSON.stringify(path)}: missing`);
    else if (JSON.stringify(g) !== JSON.stringify(w)) diffs.push(`${JSON.stringify(path)}: got ${JSON.stringify(g)} want ${JSON.stringify(w)}`);
  }
  for (const path of got.keys()) if (!want.has(path)) diffs.push(`${JSON.stringify(path)}: unexpected`);
  return diffs;
}

/** xattrs of every non-symlink path that has any, in either tree. */
export async function xattrDiffs(gotRoot: string, wantRoot: string, paths: string[]): Promise<string[]> {
  const diffs: string[] = [];
  for (const p of paths) {
    const [g, w] = await Promise.all([xattrsOf(join(gotRoot, p)), xattrsOf(join(wantRoot, p))]);
    if (JSON.stringify(Object.entries(g).sort()) !== JSON.stringify(Object.entries(w).sort())) {
      diffs.push(`${p}: xattrs ${JSON.stringify(g)} want ${JSON.stringify(w)}`);
    }
  }
  return diffs;
}
