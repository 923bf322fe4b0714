// In-memory layers for ContainerFS tests: entries built by hand, content written to a real
// `.contents` file (4096-aligned, like the flattener's) so reads go through a FileHandle.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EntryType, type EntryTypeValue, type IndexEntry } from '../../src/layer/entry.js';
import type { MemoryLayer } from '../../src/vfs/index.js';

export interface Meta {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  xattrs?: Record<string, Buffer>;
}

const TYPE_BITS: Partial<Record<EntryTypeValue, number>> = {
  [EntryType.File]: 0o100000,
  [EntryType.Dir]: 0o040000,
  [EntryType.Symlink]: 0o120000,
  [EntryType.CharDevice]: 0o020000,
  [EntryType.BlockDevice]: 0o060000,
  [EntryType.Fifo]: 0o010000,
};

let layerCounter = 0;

export class LayerBuilder {
  readonly entries: IndexEntry[] = [];
  private chunks: Buffer[] = [];
  private length = 0;

  private add(type: EntryTypeValue, path: string, meta: Meta, extra: Partial<IndexEntry> = {}): this {
    const defaultPerm = type === EntryType.Dir ? 0o755 : type === EntryType.Symlink ? 0o777 : 0o644;
    this.entries.push({
      type,
      path,
      mode: (TYPE_BITS[type] ?? 0) | (meta.mode ?? defaultPerm),
      uid: meta.uid ?? 0,
      gid: meta.gid ?? 0,
      mtimeSec: meta.mtime ?? 1_700_000_000,
      mtimeNsec: 0,
      size: 0,
      offset: 0,
      devMajor: 0,
      devMinor: 0,
      ...(meta.xattrs ? { xattrs: meta.xattrs } : {}),
      ...extra,
    });
    return this;
  }

  dir(path: string, meta: Meta = {}): this {
    return this.add(EntryType.Dir, path, meta);
  }

  file(path: string, content: string | Buffer, meta: Meta = {}): this {
    const data = Buffer.from(content);
    const offset = this.length;
    this.chunks.push(data);
    const padded = Math.ceil(data.length / 4096) * 4096;
    if (padded > data.length) this.chunks.push(Buffer.alloc(padded - data.length));
    this.length += padded;
    const sha256 = createHash('sha256').update(data).digest('hex');
    return this.add(EntryType.File, path, meta, { size: data.length, offset, sha256 });
  }

  symlink(path: string, target: string, meta: Meta = {}): this {
    return this.add(EntryType.Symlink, path, meta, { linkTarget: target });
  }

  hardlink(path: string, target: string): this {
    return this.add(EntryType.Hardlink, path, {}, { linkTarget: target });
  }

  device(path: string, kind: 'char' | 'block', major: number, minor: number, meta: Meta = {}): this {
    const type = kind === 'char' ? EntryType.CharDevice : EntryType.BlockDevice;
    return this.add(type, path, meta, { devMajor: major, devMinor: minor });
  }

  fifo(path: string, meta: Meta = {}): this {
    return this.add(EntryType.Fifo, path, meta);
  }

  whiteout(path: string): this {
    return this.add(EntryType.Whiteout, path, { mode: 0 });
  }

  opaque(path: string): this {
    return this.add(EntryType.Opaque, path, { mode: 0 });
  }

  /** Writes the `.contents` file into `dir` and returns the layer. */
  build(dir: string): MemoryLayer & { contentsPath: string } {
    const contentsPath = join(dir, `layer-${process.pid}-${layerCounter++}.contents`);
    writeFileSync(contentsPath, Buffer.concat(this.chunks));
    return { entries: this.entries, contentsPath };
  }
}

export function layer(): LayerBuilder {
  return new LayerBuilder();
}
