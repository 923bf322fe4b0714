// Images whose merged tree peers have got wrong (../shared/cases/, issue 9), written by python3's
// tarfile into one OCI layout, so the VFS and the exports can be compared with `umoci unpack`.
import { join } from 'node:path';
import type { BuiltImage } from './busybox.js';
import { memo } from './cache.js';
import { py, pyBuild, type PyEntry, type PyImage } from './pyimage.js';
import { tmpDir } from './tools.js';

export interface TreeCase {
  name: string;
  image: BuiltImage;
  /**
   * Paths where vmimg deliberately differs from umoci (root-relative), with the reason; the
   * comparisons leave them out and the case's own test checks them.
   */
  differs?: Record<string, string>;
}

interface CaseSpec {
  layers: Record<string, PyEntry[]>;
  image: PyImage;
  differs?: Record<string, string>;
}

/**
 * A big top layer over a small base (breaker5 B3's shape, issue 10): the compact stack merge (src/vfs/
 * stack-merge.ts) keeps the top layer's directories as they are and must apply the base's few entries
 * and the top's whiteouts, opaque markers, replaced directories and hardlinks to the base as the merge does.
 */
function bigOverBase(): CaseSpec {
  const top: PyEntry[] = [];
  for (let i = 0; i < 1500; i++) top.push(py.file(`d${String(i % 15).padStart(2, '0')}/f${String(i).padStart(4, '0')}`, i % 100 === 0 ? `${i}\n` : ''));
  top.push(
    py.file('.wh.opt'), py.file('etc/.wh.hostname'), py.file('var/.wh..wh..opq'), py.file('var/new', 'new\n'),
    py.file('srv', 'srv is a file now\n'),
    py.file('usr/bin/.wh.tool1'), py.file('deep/a/b/.wh.c'), py.file('usr/lib/.wh..wh..opq'),
    py.hard('usr/bin/sh', 'bin/busybox'), py.file('bin/busybox', 'replaced after the link\n'), py.dir('etc/', { mode: 0o750 }),
  );
  return {
    layers: {
      base: [
        py.dir('bin/'), py.file('bin/busybox', 'ELF\n', { mode: 0o755 }), py.hard('bin/ls', 'bin/busybox'), py.dir('etc/'), py.file('etc/hostname', 'h\n'),
        py.file('etc/passwd', 'root\n'), py.dir('usr/', { mode: 0o711 }), py.file('usr/bin/tool1', 't1'), py.sym('usr/bin/tool2', '../../bin/busybox'),
        py.file('usr/lib/libc.so', 'libc'), py.file('opt/app/x', 'x'), py.dir('var/', { mode: 0o700 }), py.file('var/log/old', 'old'),
        py.dir('srv/'), py.file('srv/www/index', 'i'), py.file('deep/a/b/c', 'c'), py.file('deep/a/b/d', 'd'),
      ],
      top,
    },
    image: { layers: ['base', 'top'] },
  };
}

const CASES: Record<string, CaseSpec> = {
  'big-over-base': bigOverBase(),
  // docker-save-repeated-layer: one diff_id at two positions, a whiteout between them.
  'repeated-layer': {
    layers: {
      app: [py.dir('bin/'), py.file('bin/app', 'app\n', { mode: 0o755 }), py.hard('bin/app2', 'bin/app'), py.dir('etc/'), py.file('etc/app.conf', 'conf\n')],
      empty: [],
      gone: [py.file('etc/.wh.app.conf')],
    },
    image: { layers: ['app', 'empty', 'gone', 'app', 'empty'] },
  },
  // attack A1.20: hardlinks keep the inode their target held when they appeared.
  'hardlink-identity': {
    layers: {
      base: [py.dir('etc/'), py.file('etc/passwd', 'root:x:0:0:lower\n')],
      top: [
        py.file('etc/passwd', 'NEW CONTENT\n'), py.hard('etc/hl', 'etc/passwd'), py.sym('etc/passwd', '/nonexistent'),
        py.file('f', 'AAAA\n'), py.hard('h', 'f'), py.dir('f/'), py.file('f/inside', 'in\n'),
        py.file('g', 'GGGG\n'), py.hard('g1', 'g'), py.hard('g2', 'g'), py.hard('g3', 'g1'), py.file('g', 'other g\n'), py.file('g1', 'other g1\n'),
      ],
    },
    image: { layers: ['base', 'top'] },
  },
  // hardlink-to-lower-layer: the target is a file of the layer below (and a chain through it).
  'hardlink-to-lower-layer': {
    layers: {
      l1: [py.dir('usr/'), py.dir('usr/lib/'), py.file('usr/lib/libfoo.so.1', 'ELF-foo\n', { mode: 0o755 }), py.file('usr/lib/libbar.so.1', 'ELF-bar\n')],
      l2: [py.dir('usr/'), py.dir('usr/lib/'), py.hard('usr/lib/libfoo.so', 'usr/lib/libfoo.so.1'), py.hard('usr/lib/libfoo.so.0', 'usr/lib/libfoo.so'), py.hard('usr/lib/libbar.so', 'usr/lib/libbar.so.1'), py.file('usr/lib/libbar.so.1', 'new bar\n')],
    },
    image: { layers: ['l1', 'l2'] },
  },
  // write-through-symlink-parent (pnpm) and attacks A1.08-A1.11: parents through symlinks of the same
  // layer (relative, absolute, chained, escaping) land in the target, inside the image.
  'symlink-parent': {
    layers: {
      l1: [
        py.dir('app/'), py.dir('app/.pnpm/'), py.dir('app/.pnpm/pkg@1/'), py.dir('app/.pnpm/pkg@1/node_modules/'),
        py.dir('app/.pnpm/pkg@1/node_modules/pkg/'), py.file('app/.pnpm/pkg@1/node_modules/pkg/index.js', 'pkg\n'),
        py.dir('app/.pnpm/other@1/'), py.dir('app/.pnpm/other@1/node_modules/'), py.dir('app/.pnpm/other@1/node_modules/other/'),
        py.dir('app/node_modules/'),
        py.sym('app/node_modules/pkg', '../.pnpm/pkg@1/node_modules/pkg'),
        py.sym('app/node_modules/other', '../.pnpm/other@1/node_modules/other'),
        py.file('app/node_modules/other/src/a.js', 'a\n'),
        py.sym('chain1', 'chain2'), py.sym('chain2', '/abs/target'), py.file('chain1/x/f', 'through a chain\n'),
        py.sym('evil', '/'), py.file('evil/etc/evil-passwd', 'A1.08\n'),
        py.sym('up', '../../../../../../'), py.file('up/tmp/pwned', 'A1.10\n'),
        py.sym('etc2', '/etc'), py.file('etc2/shadow', 'A1.11\n'),
        py.dir('real/'), py.file('real/f', 'real f\n'), py.sym('d', 'real'), py.hard('hl', 'd/f'),
        py.sym('later-dir', 'real'), py.file('later-dir/into-real', 'r\n'), py.dir('later-dir/'), py.file('later-dir/own', 'o\n'),
      ],
      l2: [py.file('app/node_modules/pkg/src/extra.js', 'extra\n'), py.file('evil/etc/next-layer', 'A1.09\n')],
    },
    image: { layers: ['l1', 'l2'] },
    differs: {
      'app/node_modules/pkg': 'a lower layer\'s symlink: overlayfs shows the upper directory, umoci writes through it',
      'app/.pnpm/pkg@1/node_modules/pkg/src': 'umoci puts the next layer\'s extra.js here',
      evil: 'the same: /evil is a directory in the next layer (overlayfs), umoci writes into /etc',
      'etc/next-layer': 'umoci writes the next layer\'s evil/etc/next-layer here',
    },
  },
};

/** Every case, built once per process into one layout (tag = case name). */
export function treeCases(): Promise<TreeCase[]> {
  return memo('tree-cases', async () => {
    const layout = join(await tmpDir('vmimg-tree-cases-'), 'layout');
    const names = Object.keys(CASES);
    const layers: Record<string, PyEntry[]> = {};
    const images = names.map((name) => {
      const spec = CASES[name]!;
      for (const [l, entries] of Object.entries(spec.layers)) layers[`${name}/${l}`] = entries;
      return { ...spec.image, tag: name, layers: spec.image.layers.map((l) => `${name}/${l}`) };
    });
    const report = await pyBuild({ layers, layout: { dir: layout, images } });
    return names.map((name, i) => {
      const r = report.layout![i]!;
      const image: BuiltImage = { layout, tag: name, ref: `${layout}:${name}`, arch: 'amd64', manifestDigest: r.manifestDigest!, manifestSize: 0 };
      return { name, image, ...(CASES[name]!.differs ? { differs: CASES[name]!.differs } : {}) };
    });
  });
}
