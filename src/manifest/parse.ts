/** Parsing and validating manifests and indexes (OCI and Docker schema 2); schema 1 is refused. */
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits, documentTooLarge } from './limits.js';
import {
  MediaType,
  baseType,
  isIndexMediaType,
  isManifestMediaType,
  isSchema1MediaType,
} from './media-types.js';
import type { Descriptor, ImageIndex, ImageManifest, ManifestDocument } from './types.js';
import { invalidManifest, isObject, optString, optStringMap, parseDescriptor, parseJson, type Json } from './validate.js';

/**
 * Parses a manifest or index. The kind comes from the document's `mediaType`, else from the
 * `Content-Type` header (when it names a manifest type), else from its shape. A header and a body
 * that disagree on the kind are refused, as are documents shaped like both.
 */
export function parseManifestDocument(bytes: Buffer, mediaTypeHeader?: string): ManifestDocument {
  const max = documentLimits().maxManifestBytes;
  if (bytes.length > max) throw documentTooLarge('maxManifestBytes', `manifest is ${bytes.length} bytes; the limit is ${max} (maxManifestBytes)`);
  const doc = parseJson(bytes, 'manifest');
  const bodyType = optString(doc, 'mediaType', 'manifest');
  const header = mediaTypeHeader === undefined ? undefined : baseType(mediaTypeHeader);
  if (doc.schemaVersion === 1 || isSchema1MediaType(bodyType) || isSchema1MediaType(header)) throw schema1();

  const kind = documentKind(doc, bodyType, header);
  if (doc.schemaVersion !== 2) {
    throw invalidManifest('manifest', `schemaVersion must be 2, got ${JSON.stringify(doc.schemaVersion)}`);
  }
  const mediaType =
    bodyType ??
    (header !== undefined && (isManifestMediaType(header) || isIndexMediaType(header))
      ? header
      : kind === 'index' ? MediaType.OCI_INDEX : MediaType.OCI_MANIFEST);
  return kind === 'index'
    ? { kind, index: parseIndex(doc, mediaType) }
    : { kind, manifest: parseManifest(doc, mediaType) };
}

function documentKind(doc: Json, bodyType: string | undefined, header: string | undefined): 'manifest' | 'index' {
  if ('manifests' in doc && ('config' in doc || 'layers' in doc)) {
    throw invalidManifest('manifest', 'document has both "manifests" and "config"/"layers"; refusing an ambiguous document');
  }
  const headerKind = kindOf(header);
  if (bodyType !== undefined) {
    const bodyKind = kindOf(bodyType);
    if (bodyKind === undefined) throw invalidManifest('manifest', `unsupported media type "${bodyType}"`);
    if (headerKind !== undefined && headerKind !== bodyKind) {
      throw invalidManifest('manifest', `Content-Type says ${header} but the document says ${bodyType}`);
    }
    return bodyKind;
  }
  if (headerKind !== undefined) return headerKind;
  if (Array.isArray(doc.manifests)) return 'index';
  if (isObject(doc.config)) return 'manifest';
  throw invalidManifest('manifest', `cannot tell what this document is (no mediaType${header ? `, Content-Type ${header}` : ''})`);
}

function kindOf(mediaType: string | undefined): 'manifest' | 'index' | undefined {
  if (isManifestMediaType(mediaType)) return 'manifest';
  if (isIndexMediaType(mediaType)) return 'index';
  return undefined;
}

function parseManifest(doc: Json, mediaType: string): ImageManifest {
  const config = parseDescriptor(doc.config, 'manifest.config');
  if (!Array.isArray(doc.layers)) throw invalidManifest('manifest', '"layers" must be an array');
  const layers = doc.layers.map((l, i) => parseDescriptor(l, `manifest.layers[${i}]`));
  return { schemaVersion: 2, mediaType, config, layers, ...common(doc, 'manifest') };
}

function parseIndex(doc: Json, mediaType: string): ImageIndex {
  if (!Array.isArray(doc.manifests)) throw invalidManifest('index', '"manifests" must be an array');
  const manifests = doc.manifests.map((m, i) => parseDescriptor(m, `index.manifests[${i}]`));
  return { schemaVersion: 2, mediaType, manifests, ...common(doc, 'index') };
}

function common(doc: Json, where: string): { artifactType?: string; subject?: Descriptor; annotations?: Record<string, string> } {
  const artifactType = optString(doc, 'artifactType', where);
  const annotations = optStringMap(doc, 'annotations', where);
  const subject = doc.subject === undefined || doc.subject === null ? undefined : parseDescriptor(doc.subject, `${where}.subject`);
  return {
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(subject ? { subject } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

function schema1(): VmimgError {
  return new VmimgError(
    ErrorCode.UNSUPPORTED_SCHEMA1,
    'this image uses Docker manifest schema 1, a deprecated format that vmimg does not read',
    { hint: 're-push the image with a current Docker or skopeo so the registry stores a schema 2 or OCI manifest' },
  );
}
