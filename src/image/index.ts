/** Images: pull from registries, load from tars, image directories, the cache's catalog. */
export { pull, type PullOptions } from './pull.js';
export { loadFromTar, loadFromLayout, type LoadOptions } from './load.js';
export { isLocalTar, openArchive, openArchiveReader, openLayoutDir, type ArchiveOptions } from './archive.js';
export { openReaderSource, type ReaderSourceOptions } from './reader-source.js';
export { openSourceReader, type SourceSpec } from './open-reader.js';
export { validateTar, validateLayout, verifyImage, type TarReport, type ImageCheck } from './validate.js';
export { loadFromDir, exportToDir, writeImageDir, CONFIG_FILE, type Image, type ImageLayer, type WriteImageDirOptions } from './image-dir.js';
export { CacheLayout, resolveCacheDir, type CacheOptions } from './cache.js';
export { listImages, findImage, removeImage, type ImageSummary } from './catalog.js';
export { prune, type PruneOptions, type PruneResult, type SpaceCount } from './prune.js';
export { openLease, withGcLock, type CacheLease } from './lease.js';
export { prepareImage, type PrepareOptions } from './prepare.js';
export { commandLine, resolveUser, type RuntimeConfig, type LayerRecord, type ImageSourceInfo } from './runtime-config.js';
export type { ProgressEvent, ProgressListener, LayerProgress, ImageProgress, LayerState, ImageState, NoticeEvent, RetryEvent, StallEvent } from './progress.js';
export type { ImageSource, SourceLayer, OpenLayerOptions } from './source.js';
