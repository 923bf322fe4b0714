/**
 * Several `.idx` layers packed straight from their records (src/vfs/stack-merge.ts): the lower layers'
 * entries, the whiteouts, opaque markers, replaced directories and hardlinks across layers must give
 * the merge's tree exactly (test/helpers/direct-both.ts compares every answer). Layers are written by
 * python3's tarfile and flattened. The big-over-base tree case (test/helpers/tree-cases.ts) is also
 * judged against `umoci unpack` in test/vfs/umoci.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bothWays, pyLayerTars } from '../helpers/direct-both.js';
import { py, type PyEntry } from '../helpers/pyimage.js';

const stacks: [string, PyEntry[][]][] = [
  ['whiteouts of files and directories, at depth, and through ghost directories', [
    [py.dir('a/'), py.file('a/b/c/x', 'x'), py.file('a/b/c/y', 'y'), py.file('keep', 'k'), py.file('gone/deep/f', 'f'), py.file('g/h/i', 'i')],
    [py.file('a/b/c/.wh.x'), py.file('.wh.gone'), py.file('g/h/.wh.i'), py.file('top', 't')],
  ]],
  ['an opaque directory keeps its lower metadata, hides the lower subtree, not its own entries', [
    [py.dir('o/', { mode: 0o700, uid: 5 }), py.file('o/old/deep', 'old'), py.file('o/top', 'old'), py.file('p/q', 'q')],
    [py.file('o/mine', 'm'), py.file('o/.wh..wh..opq'), py.file('p/.wh..wh..opq')],
    [py.file('o/upper', 'u')],
  ]],
  ['an opaque root hides every lower entry', [
    [py.file('a', 'a'), py.file('d/b', 'b')],
    [py.file('.wh..wh..opq'), py.file('c', 'c')],
  ]],
  ['replaced directories: a file over a directory, a directory over a file and over a symlink, and back', [
    [py.file('d/x', 'x'), py.file('f', 'f'), py.sym('s', 'd'), py.file('e/y', 'y')],
    [py.file('d', 'now a file'), py.file('f/inside', 'f is a directory'), py.file('s/z', 's is a directory'), py.file('e', 'e')],
    [py.file('d/new', 'a directory again, empty below'), py.dir('e/', { mode: 0o701 })],
  ]],
  ['whiteout and re-creation in one layer; a whited-out name stays hidden below a ghost', [
    [py.file('w/old', 'o'), py.file('v/a', 'a'), py.file('v/b', 'b')],
    [py.file('.wh.w'), py.file('w/new', 'n'), py.file('v/.wh.a'), py.file('v/.wh.c')],
    [py.file('v/sub/.wh.q')],
  ]],
  ['hardlinks: to a lower file, chained, to a replaced name, and counted', [
    [py.dir('usr/lib/'), py.file('usr/lib/libfoo.so.1', 'foo', { mode: 0o755 }), py.hard('usr/lib/alias', 'usr/lib/libfoo.so.1'), py.file('usr/lib/bar', 'bar')],
    [py.hard('usr/lib/libfoo.so', 'usr/lib/libfoo.so.1'), py.hard('usr/lib/libfoo.so.0', 'usr/lib/libfoo.so'), py.hard('usr/lib/b2', 'usr/lib/bar'), py.file('usr/lib/bar', 'new bar')],
    [py.file('usr/lib/.wh.alias'), py.hard('x', 'usr/lib/libfoo.so.0')],
  ]],
  ['metadata from the topmost layer with the directory; implicit directories', [
    [py.dir('m/', { mode: 0o700 }), py.file('m/a', 'a'), py.file('n/b', 'b')],
    [py.file('m/c', 'c'), py.dir('n/', { mode: 0o711, uid: 3 })],
    [py.dir('./', { mode: 0o755, uid: 1 }), py.file('m/d', 'd')],
  ]],
];

/** Every stack's layer tars, written by one python3 run. */
async function tarsOf(all: PyEntry[][][]): Promise<Buffer[][]> {
  const tars = await pyLayerTars(Object.fromEntries(all.flatMap((layers, s) => layers.map((l, i) => [`s${s}-${i}`, l]))));
  return all.map((layers, s) => layers.map((_, i) => tars[`s${s}-${i}`]!));
}

const handMade = tarsOf(stacks.map(([, layers]) => layers));

for (const [k, [name]] of stacks.entries()) {
  test(`stack merge: ${name} — the merge's tree exactly`, async () => {
    const r = await bothWays(...(await handMade)[k]!);
    assert.equal(r.direct, true, 'packed from the records');
    assert.deepEqual(r.records, r.merged);
    assert.deepEqual(r.warnings[0], r.warnings[1]);
  });
}

test('stack merge gives up on a layer only the merge may judge, and the image still opens the same', async () => {
  const r = await bothWays([py.file('a/b', 'b')], [py.file('c', 'file'), py.file('c/d', 'below')]);
  assert.equal(r.direct, false);
  assert.deepEqual(r.records, r.merged);
});

test('stack merge: a hardlink to a name no layer has is refused the same way', async () => {
  const r = await bothWays([py.file('a', 'a')], [py.hard('h', 'missing')]);
  assert.deepEqual(r.records, r.merged);
  assert.match(r.records[0]!, /^error ERR_INVALID_LAYER/);
});

/** A seeded stack of 2-4 layers over a small namespace: every kind of entry, whiteouts and markers anywhere. */
function randomStack(seed: number): PyEntry[][] {
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const names = ['a', 'b', 'c', 'a/x', 'a/y', 'b/x', 'a/x/z', 'b/x/z', 'c/q'];
  const layers: PyEntry[][] = [];
  const lowerFiles: string[] = []; // files of the layers so far, newest first: hardlink targets
  for (let l = 2 + rand(3); l > 0; l--) {
    const used = new Set<string>();
    const layer: PyEntry[] = [];
    for (let k = 3 + rand(6); k > 0; k--) {
      const path = names[rand(names.length)]!;
      if (used.has(path) || [...used].some((u) => path.startsWith(`${u}/`) || u.startsWith(`${path}/`))) continue;
      used.add(path);
      const slash = path.lastIndexOf('/');
      const [dir, base] = slash < 0 ? ['', path] : [`${path.slice(0, slash)}/`, path.slice(slash + 1)];
      const kind = rand(7);
      if (kind === 0) layer.push(py.file(`${dir}.wh.${base}`));
      else if (kind === 1) layer.push(py.file(`${path}/.wh..wh..opq`));
      else if (kind === 2) layer.push(py.dir(`${path}/`, { mode: 0o700 + rand(8) }));
      else if (kind === 3) layer.push(py.sym(path, names[rand(names.length)]!));
      else if (kind === 4 && lowerFiles.some((f) => f !== path)) layer.push(py.hard(path, lowerFiles.find((f) => f !== path)!));
      else layer.push(py.file(path, `${l}:${path}`));
    }
    layers.push(layer);
    for (const e of layer) if (e.type === undefined && typeof e.name === 'string' && !e.name.includes('.wh.')) lowerFiles.unshift(e.name);
  }
  return layers;
}

test('stack merge: 60 seeded random stacks give the merge\'s tree, warnings and errors', async () => {
  let direct = 0;
  let compared = 0;
  const seeds = Array.from({ length: 60 }, (_, k) => randomStack(k + 1));
  const tars = await tarsOf(seeds);
  for (let seed = 1; seed <= 60; seed++) {
    const layers = seeds[seed - 1]!;
    let r;
    try {
      r = await bothWays(...tars[seed - 1]!);
    } catch (err) {
      if (/^flattening layer: hardlink/.test((err as Error).message)) continue; // a link to a name its own layer removed: the flattener refuses it
      throw err;
    }
    compared++;
    assert.deepEqual(r.records, r.merged, `seed ${seed}: ${JSON.stringify(layers)}`);
    assert.deepEqual(r.warnings[0], r.warnings[1], `seed ${seed}`);
    if (r.direct) direct++;
  }
  assert.ok(compared >= 45 && direct >= 0.7 * compared, `${compared} of 60 stacks compared, ${direct} of them packed from the records`);
});
