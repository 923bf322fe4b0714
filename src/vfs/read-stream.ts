/** createReadStream over ContainerFS: chunked positional reads, `end` inclusive like fs. */
import { Readable } from 'node:stream';
import type { ContainerFS, ImagePath } from './container-fs.js';
import { S_IFDIR, S_IFMT } from '../layer/entry.js';
import { VfsError } from './errors.js';
import { nameString } from '../util/byte-names.js';
import { ErrorCode, VmimgError } from '../errors.js';
import type { ContentVerifier } from './verify.js';

export interface VfsReadStreamOptions {
  start?: number;
  /** Inclusive, like fs.createReadStream. */
  end?: number;
  highWaterMark?: number;
  encoding?: BufferEncoding;
  /** Check the content against its index sha256 (the whole file must be read: no start/end). */
  verify?: boolean;
}

export function createVfsReadStream(fs: ContainerFS, path: ImagePath, options: VfsReadStreamOptions): Readable {
  let ino = 0;
  let pos = options.start ?? 0;
  let last = 0; // inclusive
  let verifier: ContentVerifier | undefined;
  const stream = new Readable({
    highWaterMark: options.highWaterMark ?? 64 * 1024,
    construct(callback) {
      try {
        ino = fs.resolvePath(path);
        const attr = fs.getattr(ino);
        if ((attr.mode & S_IFMT) === S_IFDIR) throw new VfsError('EISDIR', 'read', nameString(path));
        last = Math.min(options.end ?? Infinity, attr.size - 1);
        if (options.verify) {
          if (pos !== 0 || last !== attr.size - 1) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'createReadStream: verify needs the whole file (no start or end)');
          verifier = fs.verifier(ino, nameString(path));
          if (attr.size === 0) verifier.check(); // no chunk will come
        }
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
          if (verifier !== undefined) {
            verifier.update(buf);
            if (pos > last) verifier.check(); // throws: handled below, before the last chunk is pushed
          }
          this.push(buf.length > 0 ? buf : null);
        },
      ).catch((err: Error) => this.destroy(err));
    },
  });
  if (options.encoding !== undefined) stream.setEncoding(options.encoding);
  return stream;
}
