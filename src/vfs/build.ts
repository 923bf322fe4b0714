/**
 * From loaded layers to an inode table: a single `.idx` layer packed straight from its records
 * (direct-pack.ts, from the scan loadLayers made while checking them), anything else merged (merge.ts) and packed (pack.ts); and the layers' content readers.
 */
import type { ContentReader } from './content.js';
import { packScanned } from './direct-pack.js';
import { layerEntries, RecordEntries } from './layer-entries.js';
import { Merger } from './merge.js';
import { packTree } from './pack.js';
import { contentReader, type LoadedLayer } from './source.js';
import type { InodeTable } from './tree.js';

/** The merged tree of `layers` (bottom first) and what the merge wants a user to know (one line each). */
export function buildTable(layers: readonly LoadedLayer[]): { table: InodeTable; warnings: string[] } {
  const sources = layers.map((l) => layerEntries(l.entries));
  const scan = layers.length === 1 ? layers[0]!.scan : undefined;
  const direct = scan !== undefined && sources[0] instanceof RecordEntries ? packScanned(scan, sources[0]) : undefined;
  if (direct !== undefined) return { table: direct, warnings: [] };
  const merger = new Merger();
  sources.forEach((entries, i) => merger.applyLayer(entries, i));
  return { table: packTree(merger.root, merger.leaves, sources), warnings: merger.allWarnings() };
}

/** Readers for `layers` (bottom first), and those of them ContainerFS made and must close. */
export function layerReaders(layers: readonly LoadedLayer[]): { readers: ContentReader[]; owned: ContentReader[] } {
  const made = layers.map(contentReader);
  return { readers: made.map((m) => m.reader), owned: made.filter((m) => m.owned).map((m) => m.reader) };
}
