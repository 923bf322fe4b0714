/** Public API of the layer area: decompression, the `.idx` codec and the flattener. */
export { EntryType, type EntryTypeValue, type IndexEntry } from './entry.js';
export { decompress, sniffCompression, createZstdDecompressor, type Compression } from './decompress.js';
export { encodeIndex, decodeIndex, readIndexFile, type IndexHeader, type DecodedIndex, INDEX_VERSION } from './index-format.js';
export { flattenLayer, hasLayer, layerPaths, type FlattenOptions, type LayerInfo, type LayerFiles } from './flatten.js';
