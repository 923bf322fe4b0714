import type { CommandModule } from 'yargs';
import { ErrorCode, VmimgError } from '../../errors.js';
import { ContainerFS, S_IFDIR, S_IFMT, S_IFREG, VfsError } from '../../vfs/index.js';
import type { GlobalArgs } from '../context.js';
import { resolveImage } from '../resolve-image.js';
import { writeStdout } from '../stdout.js';
import { run } from './common.js';

interface Args {
  image: string;
  path: string;
}

const CHUNK = 1 << 20;

export const catCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'cat <image> <path>',
  describe: "Write a file's bytes to stdout (symlinks followed inside the image)",
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .positional('path', { type: 'string', demandOption: true, describe: 'Path inside the image' })
      .example('$0 cat alpine:3.20 /etc/os-release', 'Print a file')
      .example('$0 cat ./vm /bin/sh > sh.bin', 'Copy a binary out of an image directory'),
  handler: run<Args>(async (ctx, args) => {
    const { image } = await resolveImage(ctx, args.image);
    const fs = await ContainerFS.open(image);
    try {
      const ino = regularFile(fs, args.path); // fail before writing anything (ENOENT, ELOOP, EISDIR, ...)
      const size = fs.getattr(ino).size;
      // checked against the index sha256 before the last chunk goes out: a file of one chunk
      // (up to 1 MiB) that is damaged prints nothing, a longer one stops short (exit 6 either way)
      const verifier = fs.verifier(ino, args.path);
      for (let pos = 0; pos < size; ) {
        ctx.signal.throwIfAborted();
        const buf = await fs.read(ino, pos, Math.min(CHUNK, size - pos));
        if (buf.length === 0) break; // the file ended early: ContentFile reports truncation itself
        pos += buf.length;
        verifier.update(buf);
        if (pos === size) verifier.check();
        await writeStdout(buf);
      }
    } finally {
      await fs.close();
    }
  }),
};

/** The inode of `path` (symlinks followed) if it is a regular file. */
function regularFile(fs: ContainerFS, path: string): number {
  const ino = fs.resolvePath(path, 'open');
  const type = fs.getattr(ino).mode & S_IFMT;
  if (type === S_IFDIR) throw new VfsError('EISDIR', 'read', path);
  if (type !== S_IFREG) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${path} is not a regular file (devices, fifos and sockets have no content in an image)`);
  }
  return ino;
}
