/** `vmimg/vfs`: ContainerFS, a read-only merged view of an image's layers. */
export { ContainerFS, type DirEntry, type ImagePath, type BufferEncodingOption } from './container-fs.js';
export { decodeName, encodeName, isRawName } from '../util/byte-names.js';
export { LayeredContainerFS } from './layered.js';
export { VfsError, isVfsError, type VfsErrorCode } from './errors.js';
export { VfsPromises, type VfsPath } from './promises.js';
export { VfsFileHandle } from './file-handle.js';
export { VfsStats, VfsDirent, DT, makedev, type Attr } from './stats.js';
export { MAX_SYMLINK_HOPS } from './resolve.js';
export { ROOT_INO, compareNames, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO } from './tree.js';
export type { ContainerSource, LayeredImage, LayerSource, LayerFiles, LayerContent, MemoryLayer } from './source.js';
export { ContentFile, MAX_OPEN_CONTENTS, type ContentReader } from './content.js';
export type { VfsReadStreamOptions } from './read-stream.js';
export { ContentVerifier, contentMismatch } from './verify.js';
