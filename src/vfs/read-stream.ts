/** createReadStream over ContainerFS: chunked positional reads, `end` inclusive like fs. */
import { Readable } from 'node:stream';
import type { ContainerFS, ImagePath } from './container-fs.js';
import { S_IFDIR, S_IFMT } from '../layer/entry.js';
import { VfsError } from './errors.js';
import { nameString } from '../util/byte-names.js';

export interface VfsReadStreamOptions {
  start?: number;
  /** Inclusive, like fs.createReadStream. */
  end?: number;
  highWaterMark?: number;
  encoding?: BufferEncoding;
}

export function createVfsReadStream(fs: ContainerFS, path: ImagePath, options: VfsReadStreamOptions): Readable {
  let ino = 0;
  let pos = options.start ?? 0;
  let last = 0; // inclusive
  const stream = new Readable({
    highWaterMark: options.highWaterMark ?? 64 * 1024,
    construct(callback) {
      try {
        ino = fs.resolvePath(path);
        const attr = fs.getattr(ino);
        if ((attr.mode & S_IFMT) === S_IFDIR) throw new VfsError('EISDIR', 'read', nameString(path));
        last = Math.min(options.end ?? Infinity, attr.size - 1);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    read(size) {
      if (pos > last) {
        this.push(null);
        return;
      }
      const n = Math.min(size, last - pos + 1);
      fs.read(ino, pos, n).then(
        (buf) => {
          pos += buf.length;
          this.push(buf.length > 0 ? buf : null);
        },
        (err: Error) => this.destroy(err),
      );
    },
  });
  if (options.encoding !== undefined) stream.setEncoding(options.encoding);
  return stream;
}
