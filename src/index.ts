/** vmimg: prepare OCI/Docker images for lightweight VMs. */
export { VmimgError, ErrorCode, isVmimgError, type ErrorCodeValue } from './errors.js';
export * from './image/index.js';
export * from './content/index.js';
export { parseReference, formatReference, familiarName, type Reference } from './reference/index.js';
export { parsePlatform, formatPlatform, hostPlatform, normalizePlatform, createMatcher, type Platform } from './platform/index.js';
export { validateDigest, digestHex, sha256Digest } from './digest/index.js';
export { RegistryClient, type RegistryClientOptions } from './registry/index.js';
export { ContainerFS, LayeredContainerFS } from './vfs/index.js';
export { EntryType, type IndexEntry } from './layer/entry.js';
export { exportImage, exportTar, exportInitramfs, bootImage, type ExportFormat, type ExportOptions, type BootOptions, type BootResult } from './export/index.js';
export { loadUserConfig, userConfigPath, type UserConfig } from './config.js';
export { DEFAULT_LIMITS, parseSize, type LayerLimits } from './layer/limits.js';
export { openLazyImage, hasLazyLayers, type LazyImage, type LazyOpenOptions } from './lazy/open-image.js';
export type { LazyStats } from './lazy/lazy-content.js';
export { readLazyStats, statsPath, type ImageLazyStats } from './lazy/stats.js';
