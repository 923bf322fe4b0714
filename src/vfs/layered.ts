/**
 * LayeredContainerFS: more layers stacked on a live ContainerFS with the same merge rules
 * (whiteouts, opaque directories, hardlinks). The base stays usable and is not closed by close();
 * base content is read through the base's own layer files, so close the base last.
 */
import { ContainerFS, containerInternals, layerReaders } from './container-fs.js';
import { Merger } from './merge.js';
import { loadLayers, type LayerSource, type LoadedLayer, type MemoryLayer } from './source.js';
import { layerEntries } from './layer-entries.js';
import { packTree, unpackTree } from './pack.js';

export class LayeredContainerFS extends ContainerFS {
  readonly #base: ContainerFS;

  /** Stacks already-decoded layers (bottom first) on `base`. */
  constructor(base: ContainerFS, extraLayers: readonly (MemoryLayer | LoadedLayer)[]) {
    const { table, files } = containerInternals(base);
    const merger = new Merger(unpackTree(table));
    const sources = [...table.sources, ...extraLayers.map((l) => layerEntries(l.entries))];
    for (let i = table.sources.length; i < sources.length; i++) merger.applyLayer(sources[i]!, i);
    const { readers, owned } = layerReaders(extraLayers);
    super(packTree(merger.root, merger.leaves, sources), [...files, ...readers], owned, merger.allWarnings());
    this.#base = base;
  }

  /** Like the constructor, reading `.idx`/`.contents` pairs first. */
  static async stack(base: ContainerFS, extraLayers: readonly LayerSource[]): Promise<LayeredContainerFS> {
    return new LayeredContainerFS(base, await loadLayers(extraLayers));
  }

  base(): ContainerFS {
    return this.#base;
  }
}
