/** The content seam: BlobReaders for every source and the one index walk over them (see README.md). */
export { isRemoteReader, type BlobReader, type RemoteBlobReader, type NamedDescriptor, type OpenBlobOptions, type ReadOptions, type SourceKind } from './blob-reader.js';
export { chooseImage, listImageEntries, listPlatforms, platformWarning, MAX_INDEX_DEPTH, MAX_WALK_DOCUMENTS, MAX_WALK_ENTRIES, type ImageEntry, type PlatformEntry, type ReadBlob, type WalkOptions, type WalkedImage } from './walk.js';
export { OciLayoutReader, directoryFiles, tarFiles, blobPath, namesOf, REF_NAME_ANNOTATION, CONTAINERD_NAME_ANNOTATION, type LayoutFiles } from './layout.js';
export { DockerSaveReader, SYNTHESIZED_ANNOTATION, type DockerManifestEntry } from './docker-save.js';
export { RegistryBlobReader } from './registry.js';
export { StoreBlobReader } from './store.js';
