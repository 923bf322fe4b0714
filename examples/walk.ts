/**
 * Walks an image through ContainerFS's inode API (what a virtio-fs / FUSE / 9p server calls),
 * printing `mode uid gid size path` like `find -printf`, then prints one file from the image.
 * Run: node --import tsx examples/walk.ts IMAGE_DIR [FILE_TO_CAT]   (after `npm run build`: `vmimg/vfs`
 * is the package's own entry point, dist/vfs/index.js)
 * IMAGE_DIR is an image directory: config.json plus each layer's .idx / .contents.
 */
import { ContainerFS, DT } from 'vmimg/vfs';

const [imageDir, named] = process.argv.slice(2);
// With no FILE_TO_CAT, show /etc/os-release when the image has one (busybox images don't).
if (imageDir === undefined) {
  console.error('usage: walk.ts IMAGE_DIR [FILE_TO_CAT]');
  process.exit(2);
}

const fs = await ContainerFS.open(imageDir);
try {
  const walk = (dirIno: number, dirPath: string): void => {
    for (const entry of fs.readdir(dirIno)) {
      const a = fs.getattr(entry.ino);
      const path = `${dirPath}/${entry.name}`;
      const mode = a.mode.toString(8).padStart(7, '0');
      const link = entry.type === DT.LNK ? ` -> ${fs.readlink(entry.ino)}` : '';
      console.log(`${mode} ${a.uid}:${a.gid} ${String(a.size).padStart(9)} ${path}${link}`);
      if (entry.type === DT.DIR) walk(entry.ino, path);
    }
  };
  walk(fs.root(), '');

  // Symlinks are resolved inside the image (absolute targets start at its root).
  const catPath = named ?? '/etc/os-release';
  if (fs.exists(catPath)) {
    console.log(`\n==> ${catPath} (really ${fs.realpath(catPath)}) <==`);
    const ino = fs.resolvePath(catPath);
    for (let offset = 0; ; ) {
      const chunk = await fs.read(ino, offset, 64 * 1024);
      if (chunk.length === 0) break;
      process.stdout.write(chunk);
      offset += chunk.length;
    }
  } else if (named !== undefined) {
    console.error(`${catPath}: not in the image`);
    process.exitCode = 1;
  }
} finally {
  await fs.close();
}
