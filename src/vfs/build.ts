/**
 * From loaded layers to an inode table: `.idx` layers packed straight from their records (direct-pack.ts,
 * from the scans loadLayers made while checking them), anything else merged (merge.ts) and packed
 * (pack.ts); and the layers' content readers.
 */
import type { ContentReader } from './content.js';
import { packScans } from './direct-pack.js';
import type { LayerScan } from './direct-scan.js';
import { layerEntries, RecordEntries } from './layer-entries.js';
import { Merger } from './merge.js';
import { packTree } from './pack.js';
import { contentReader, type LoadedLayer } from './source.js';
import type { InodeTable } from './tree.js';

/** The merged tree of `layers` (bottom first) and what the merge wants a user to know (one line each). */
export function buildTable(layers: readonly LoadedLayer[]): { table: InodeTable; warnings: string[] } {
  const sources = layers.map((l) => layerEntries(l.entries));
  const scans = layers.map((l) => l.scan);
  if (layers.length > 0 && scans.every((s) => s !== undefined) && sources.every((s) => s instanceof RecordEntries)) {
    const direct = packScans(scans as LayerScan[], sources as RecordEntries[]);
    if (direct !== undefined) return direct;
  }
  const merger = new Merger();
  sources.forEach((entries, i) => merger.applyLayer(entries, i));
  return { table: packTree(merger.root, merger.leaves, sources), warnings: merger.allWarnings() };
}

/** Readers for `layers` (bottom first), and those of them ContainerFS made and must close. */
export function layerReaders(layers: readonly LoadedLayer[]): { readers: ContentReader[]; owned: ContentReader[] } {
  const made = layers.map(contentReader);
  return { readers: made.map((m) => m.reader), owned: made.filter((m) => m.owned).map((m) => m.reader) };
}
