/** Manifests, indexes and image configs: media types, parsing with validation, config platform checks. No fetching. */
export * from './media-types.js';
export { DEFAULT_DOCUMENT_LIMITS, documentLimits, documentTooLarge, setDocumentLimits, type DocumentLimits } from './limits.js';
export { parseManifestDocument } from './parse.js';
export { parseImageConfig } from './config.js';
export {
  ATTESTATION_ANNOTATION,
  checkConfigPlatform,
  configPlatform,
  isAttestation,
} from './choose.js';
export { parseDescriptor } from './validate.js';
export type {
  ContainerConfig,
  Descriptor,
  HistoryEntry,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  ManifestDocument,
} from './types.js';
