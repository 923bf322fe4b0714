import type { CommandModule } from 'yargs';
import { ContainerFS } from '../../vfs/container-fs.js';
import type { GlobalArgs } from '../context.js';
import { resolveImage } from '../resolve-image.js';
import { Lister, modeString, type ListedEntry } from '../walk.js';
import { run } from './common.js';
import { escapeTerminal } from '../escape.js';
import { writeStdout } from '../stdout.js';

interface Args {
  image: string;
  path: string;
  recursive?: boolean;
  long?: boolean;
}

export const lsCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'ls <image> [path]',
  describe: 'List files inside an image (merged view of its layers)',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'IMAGE' })
      .positional('path', { type: 'string', default: '/', describe: 'Path inside the image' })
      .option('recursive', { alias: 'R', type: 'boolean', describe: 'List subdirectories too' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'Mode, owner, size, mtime, link target' })
      .example('$0 ls alpine:3.20 /etc -l', 'Long listing of /etc')
      .example('$0 ls images/busybox-amd64.docker.tar -R --json', 'Every entry as one JSON object per line'),
  handler: run<Args>(async (ctx, args) => {
    const { image } = await resolveImage(ctx, args.image);
    const fs = await ContainerFS.open(image);
    try {
      const lister = new Lister(fs);
      const path = normalise(args.path);
      let ino = fs.lookupPath(path);
      // Like ls: a symlink to a directory lists the directory.
      if (fs.getattr(ino).mode >> 12 === 0o12 && fs.stat(path).isDirectory()) ino = fs.resolvePath(path);
      const isDir = fs.getattr(ino).mode >> 12 === 0o4;
      const entries = isDir ? lister.children(ino, path, args.recursive === true) : [lister.entry(ino, path)];
      // A recursive listing can be far larger than memory (R07: 1 GB for a 32k-deep tree): write in
      // chunks and wait for a slow reader (a pipe) instead of queueing everything in stdout's buffer.
      let chunk = '';
      for (const e of entries) {
        chunk += `${format(e, ctx.json, args.long === true, args.recursive === true || !isDir)}\n`;
        if (chunk.length >= 1 << 16) {
          await writeStdout(Buffer.from(chunk));
          chunk = '';
        }
      }
      if (chunk) await writeStdout(Buffer.from(chunk));
    } finally {
      await fs.close();
    }
  }),
};

function normalise(path: string): string {
  const p = `/${path}`.replace(/\/+/g, '/');
  return p.length > 1 ? p.replace(/\/$/, '') : p;
}

function format(e: ListedEntry, json: boolean, long: boolean, fullPath: boolean): string {
  if (json) return JSON.stringify(e);
  const name = escapeTerminal(fullPath ? e.path : e.path.slice(e.path.lastIndexOf('/') + 1));
  if (!long) return name;
  const size = e.rdev !== undefined ? `${Math.floor(e.rdev / 256) & 0xfff},${e.rdev & 0xff}` : String(e.size);
  const target = escapeTerminal(e.target ?? '');
  const link = e.type === 'symlink' ? ` -> ${target}` : e.type === 'hardlink' ? ` link to ${target}` : '';
  return `${modeString(e)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${size.padStart(10)} ${e.mtime.replace('.000Z', 'Z')} ${name}${link}`;
}
