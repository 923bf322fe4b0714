/**
 * ContainerFS micro-benchmark: open (idx decode + merge), random path lookups, and a full tree walk
 * with getattr against `find` over the same tree on disk. Prints ratios (>1 = better than target).
 * Run: node --import tsx bench/vfs.ts [IMAGE_DIR [ROOTFS_FOR_FIND]]
 * Without arguments it builds a synthetic Debian-like image (~7k entries, 3 layers) in a temp dir.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EntryType, type IndexEntry } from '../src/layer/entry.js';
import { encodeIndex } from '../src/layer/index-format.js';
import { ContainerFS } from '../src/vfs/index.js';

const OPEN_BUDGET_MS = 50;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const LOOKUPS_TARGET = 1_000_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** One synthetic layer: entries plus its contents bytes (4096-aligned like the flattener's). */
function makeLayer(specs: [number, string, number | string][]): { entries: IndexEntry[]; contents: Buffer } {
  const entries: IndexEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [type, path, x] of specs) {
    const e: IndexEntry = {
      type: type as IndexEntry['type'], path, mode: type === EntryType.Dir ? 0o040755 : type === EntryType.Symlink ? 0o120777 : 0o100644,
      uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0, size: 0, offset: 0, devMajor: 0, devMinor: 0,
    };
    if (type === EntryType.File) {
      const data = Buffer.alloc(x as number, path.length & 0xff);
      e.size = data.length;
      e.offset = offset;
      const padded = Math.ceil(data.length / 4096) * 4096;
      chunks.push(data, Buffer.alloc(padded - data.length));
      offset += padded;
    }
    if (type === EntryType.Symlink) e.linkTarget = x as string;
    entries.push(e);
  }
  return { entries, contents: Buffer.concat(chunks) };
}

function syntheticLayers(): ReturnType<typeof makeLayer>[] {
  const D = EntryType.Dir, F = EntryType.File, L = EntryType.Symlink;
  const base: [number, string, number | string][] = [];
  const dir = (p: string) => base.push([D, p, 0]);
  for (const p of ['etc', 'usr', 'usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib/x86_64-linux-gnu', 'usr/share', 'usr/share/doc', 'usr/share/man', 'usr/share/man/man1', 'var', 'var/lib', 'var/lib/dpkg', 'var/lib/dpkg/info']) dir(p);
  base.push([L, 'bin', 'usr/bin'], [L, 'lib', 'usr/lib'], [L, 'lib64', '/usr/lib/x86_64-linux-gnu']);
  for (let i = 0; i < 400; i++) base.push([F, `usr/bin/tool${i}`, 100 + (i % 900)]);
  for (let i = 0; i < 700; i++) base.push([F, `usr/lib/x86_64-linux-gnu/lib${i}.so.1.0`, 2000], [L, `usr/lib/x86_64-linux-gnu/lib${i}.so.1`, `lib${i}.so.1.0`]);
  for (let i = 0; i < 450; i++) base.push([D, `usr/share/doc/pkg${i}`, 0], [F, `usr/share/doc/pkg${i}/copyright`, 300], [F, `usr/share/doc/pkg${i}/changelog.Debian.gz`, 500]);
  for (let i = 0; i < 700; i++) base.push([F, `usr/share/man/man1/cmd${i}.1.gz`, 400]);
  for (let i = 0; i < 900; i++) for (const ext of ['list', 'md5sums']) base.push([F, `var/lib/dpkg/info/pkg${i}.${ext}`, 200]);
  for (let i = 0; i < 1100; i++) base.push([F, `etc/conf${i}`, 50]);
  const mid: [number, string, number | string][] = [];
  for (let i = 0; i < 200; i++) mid.push([F, `usr/bin/tool${i}`, 64]);
  for (let i = 0; i < 100; i++) mid.push([EntryType.Whiteout, `usr/share/man/man1/cmd${i}.1.gz`, 0]);
  mid.push([EntryType.Opaque, 'usr/share/doc/pkg7', 0], [F, 'usr/share/doc/pkg7/README', 10]);
  const top: [number, string, number | string][] = [];
  for (let i = 0; i < 300; i++) top.push([F, `opt/app/lib/mod${i % 30}/file${i}.js`, 700]);
  return [makeLayer(base), makeLayer(mid), makeLayer(top)];
}

function writeImage(dir: string): void {
  const diffIds: string[] = [];
  syntheticLayers().forEach((l, i) => {
    const hex = (i + 1).toString(16).padStart(64, '0');
    diffIds.push(`sha256:${hex}`);
    writeFileSync(join(dir, `${hex}.contents`), l.contents);
    const header = { diffId: `sha256:${hex}`, contentsSize: l.contents.length, compressedSize: 0, tarSize: 0 };
    writeFileSync(join(dir, `${hex}.idx`), encodeIndex(header, l.entries));
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ layers: diffIds }));
}

/** Every path (leading '/') and the walk itself: readdir + getattr of every inode. */
function walk(fs: ContainerFS, paths?: string[]): number {
  let n = 0;
  const visit = (ino: number, prefix: string): void => {
    for (const e of fs.readdir(ino)) {
      const a = fs.getattr(e.ino);
      n++;
      const p = `${prefix}/${e.name}`;
      paths?.push(p);
      if ((a.mode & 0o170000) === 0o040000) visit(e.ino, p);
    }
  };
  visit(fs.root(), '');
  return n;
}

/** Writes the merged tree to disk (for find), content included. */
async function materialise(fs: ContainerFS, paths: string[], root: string): Promise<void> {
  mkdirSync(root, { recursive: true });
  for (const p of paths) {
    const st = fs.lstat(p);
    const dest = join(root, p);
    if (st.isDirectory()) mkdirSync(dest, { recursive: true });
    else if (st.isSymbolicLink()) symlinkSync(fs.readlink(p), dest);
    else writeFileSync(dest, await fs.readFile(p));
    if (!st.isSymbolicLink()) chmodSync(dest, st.mode & 0o7777);
  }
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'vmimg-bench-vfs-'));
  try {
    const imageDir = process.argv[2] ?? join(tmp, 'image');
    if (process.argv[2] === undefined) {
      mkdirSync(imageDir);
      writeImage(imageDir);
    }
    const mem = async (): Promise<number> => {
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 10));
        gc();
      }
      return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    };
    const before = await mem();
    let t = performance.now();
    const fs = await ContainerFS.open(imageDir);
    const cold = performance.now() - t;
    const inodes = fs.inodeCount;
    const bytesPerInode = ((await mem()) - before) / inodes;
    const opens: number[] = [];
    for (let i = 0; i < 10; i++) {
      t = performance.now();
      const f = await ContainerFS.open(imageDir);
      opens.push(performance.now() - t);
      await f.close();
    }
    const paths: string[] = [];
    const entries = walk(fs, paths);

    const N = 1_000_000;
    const picks = new Uint32Array(N).map((_, i) => (i * 2654435761) % paths.length);
    const rel = paths.map((p) => p.slice(1));
    for (let i = 0; i < 100_000; i++) fs.lookupPath(paths[picks[i]!]!); // warm up
    t = performance.now();
    for (let i = 0; i < N; i++) fs.lookupPath(paths[picks[i]!]!);
    const lookupsPerSec = N / ((performance.now() - t) / 1000);
    t = performance.now();
    for (let i = 0; i < N; i++) fs.lookupPath('/' + rel[picks[i]!]!); // a new string each time, as from a socket
    const freshPerSec = N / ((performance.now() - t) / 1000);

    const walks: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = performance.now();
      walk(fs);
      walks.push(performance.now() - t);
    }
    const rootfs = process.argv[3] ?? join(tmp, 'rootfs');
    if (process.argv[3] === undefined) await materialise(fs, paths, rootfs);
    const finds: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = performance.now();
      const r = spawnSync('find', [rootfs, '-printf', '%m %U %G %s %p\n'], { stdio: ['ignore', 'ignore', 'inherit'] });
      finds.push(performance.now() - t);
      if (r.status !== 0) throw new Error('find failed');
    }
    await fs.close();

    const open = median(opens), walkMs = median(walks), findMs = median(finds);
    console.log(`vfs: ${entries} entries, ${inodes} inodes, ~${Math.round(bytesPerInode)} B/inode retained after open`);
    console.log(`  open (decode+merge)   ${open.toFixed(1)} ms   budget ${OPEN_BUDGET_MS} ms  ratio ${(OPEN_BUDGET_MS / open).toFixed(2)}x  (first open in this process: ${cold.toFixed(1)} ms)`);
    console.log(`  random lookups        ${(lookupsPerSec / 1e6).toFixed(2)} M/s   target 1 M/s   ratio ${(lookupsPerSec / LOOKUPS_TARGET).toFixed(2)}x  (same path strings)`);
    console.log(`  random lookups        ${(freshPerSec / 1e6).toFixed(2)} M/s   target 1 M/s   ratio ${(freshPerSec / LOOKUPS_TARGET).toFixed(2)}x  (freshly built strings)`);
    console.log(`  walk+getattr          ${walkMs.toFixed(1)} ms   find -printf ${findMs.toFixed(1)} ms   ratio ${(findMs / walkMs).toFixed(2)}x faster`);
    console.log(`  open+walk vs find     ${(open + walkMs).toFixed(1)} ms   ratio ${(findMs / (open + walkMs)).toFixed(2)}x faster`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
