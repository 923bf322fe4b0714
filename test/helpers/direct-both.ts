/**
 * The direct pack's judge (test/vfs/direct-pack.test.ts, stack-merge.test.ts): an image opened from its
 * `.idx` records and from the same entries decoded (which always take the merge), every answer compared.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile, scanIndex } from '../../src/layer/index-format.js';
import { packScans } from '../../src/vfs/direct-pack.js';
import { LayerScan } from '../../src/vfs/direct-scan.js';
import { RecordEntries } from '../../src/vfs/layer-entries.js';
import { ContainerFS, encodeName } from '../../src/vfs/index.js';
import { join } from 'node:path';
import { pyBuild, pyLayerTar, type PyEntry } from './pyimage.js';
import { tmpDir } from './tools.js';

/** Many layers' tars from one python3 run (tarfile), by name. */
export async function pyLayerTars(layers: Record<string, PyEntry[]>): Promise<Record<string, Buffer>> {
  const dir = await tmpDir('vmimg-pytars-');
  await pyBuild({ layers, tarDir: dir });
  return Object.fromEntries(Object.keys(layers).map((name) => [name, readFileSync(join(dir, `${name}.tar`))]));
}

/** Everything ContainerFS answers about every inode reachable from the root, in walk order. */
export function dump(fs: ContainerFS): string[] {
  const out: string[] = [];
  const queue: [number, string][] = [[fs.root(), '']];
  while (queue.length > 0) {
    const [ino, path] = queue.shift()!;
    const a = fs.getattr(ino);
    const xattrs = fs.listxattr(ino).map((n) => `${n}=${fs.getxattr(ino, n).toString('hex')}`);
    const link = (a.mode & 0o170000) === 0o120000 ? fs.readlink(ino, { encoding: 'buffer' }).toString('hex') : '';
    out.push(JSON.stringify([encodeName(path).toString('hex'), a, link, fs.contentSha256(ino) ?? '', xattrs]));
    if ((a.mode & 0o170000) !== 0o040000) continue;
    for (const e of fs.readdir(ino)) {
      assert.equal(fs.lookup(ino, e.name), e.ino);
      queue.push([e.ino, `${path}/${e.name}`]);
    }
  }
  return out;
}

type Both = { direct: boolean; records: string[]; merged: string[]; warnings: [readonly string[], readonly string[]] };

/** Opens the layers (bottom first) from their records and from their decoded entries; an error is its code. */
export async function bothWays(...layers: (PyEntry[] | Buffer)[]): Promise<Both> {
  const dir = await tmpDir('vmimg-direct-');
  const infos: Awaited<ReturnType<typeof flattenLayer>>[] = [];
  for (const l of layers) infos.push(await flattenLayer(Readable.from([Buffer.isBuffer(l) ? l : await pyLayerTar(l)]), { dir }));
  const scans = infos.map(() => new LayerScan());
  const direct = packScans(scans, infos.map((info, i) => new RecordEntries(scanIndex(readFileSync(info.indexPath), scans[i]!.records)))) !== undefined;
  const decoded = await Promise.all(infos.map(async (info) => ({ entries: (await readIndexFile(info.indexPath)).entries, contentsPath: info.contentsPath })));
  const [records, recordWarnings] = await dumpOf(() => ContainerFS.open(infos));
  const [merged, mergeWarnings] = await dumpOf(() => ContainerFS.open(decoded));
  return { direct, records, merged, warnings: [recordWarnings, mergeWarnings] };
}

async function dumpOf(open: () => Promise<ContainerFS>): Promise<[string[], readonly string[]]> {
  let fs: ContainerFS;
  try {
    fs = await open();
  } catch (err) {
    return [[`error ${(err as { code?: string }).code}: ${(err as Error).message}`], []];
  }
  try {
    return [dump(fs), fs.warnings];
  } finally {
    await fs.close();
  }
}

