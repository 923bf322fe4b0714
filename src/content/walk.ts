/**
 * The one index walk, over any BlobReader: from the reader's roots through (nested) indexes to image
 * manifests, attestations and non-image entries left out, then one image chosen by name or digest
 * (`--tag`) and platform (select.ts, containerd's matching), and its index chain, manifest
 * and config read — raw bytes kept next to the parsed form, so the store can keep them and push can
 * copy them byte for byte. Registries, `docker save`, OCI archives and layout directories all go
 * through here; nothing else walks indexes.
 *
 * Cost: from a registry, an index entry that carries a `platform` is chosen without reading its
 * manifest; manifests and configs are read only for entries without one, for the chosen image, and
 * for every image when the selector is a digest (it may be a config digest). Local sources read all. Depth is at most MAX_INDEX_DEPTH, walked
 * without recursion.
 */
import { ErrorCode, VmimgError, isVmimgError } from '../errors.js';
import {
  DEFAULT_DOCUMENT_LIMITS,
  documentLimits,
  documentTooLarge,
  checkConfigPlatform,
  configPlatform,
  isAttestation,
  isIndexMediaType,
  isManifestMediaType,
  parseImageConfig,
  parseManifestDocument,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type ManifestDocument,
} from '../manifest/index.js';
import { formatPlatform, hostPlatform, normalizePlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { isDigestSelector, selectImage, type ImageCandidate } from './select.js';
import { isRemoteReader, type BlobReader, type NamedDescriptor, type ReadOptions } from './blob-reader.js';

/**
 * Defaults of the walk's bounds; the bounds in force are `documentLimits()` (src/manifest/limits.ts:
 * settings `maxIndexDepth`, `maxWalkEntries`, `maxWalkDocuments`). Indexes below the root index
 * (containerd walks any depth; real images use one or two).
 */
export const MAX_INDEX_DEPTH = DEFAULT_DOCUMENT_LIMITS.maxIndexDepth;
/**
 * Index entries one walk looks at, all roots together. Real sources list tens; the cap keeps a hostile
 * source (indexes of 40 000 entries each, nested) from costing more than this many steps.
 */
export const MAX_WALK_ENTRIES = DEFAULT_DOCUMENT_LIMITS.maxWalkEntries;
/** Manifests, indexes and configs one walk reads (a multi-platform image needs tens). */
export const MAX_WALK_DOCUMENTS = DEFAULT_DOCUMENT_LIMITS.maxWalkDocuments;

/** A small blob as read: its descriptor, its exact bytes (digest-checked) and its parsed form. */
export interface ReadBlob<T> {
  readonly descriptor: Descriptor;
  readonly bytes: Buffer;
  readonly parsed: T;
}

/** One image manifest the walk reached: a selection candidate (select.ts) plus where it sits. */
export interface ImageEntry extends ImageCandidate {
  /** The image manifest's descriptor (as its index lists it, or the root's). */
  readonly descriptor: Descriptor;
  /** The indexes from the root down to the one listing this manifest; empty for a root manifest. */
  readonly indexes: readonly Descriptor[];
  /** The root it was reached from. */
  readonly root: NamedDescriptor;
  /** Parsed manifest and config, when the walk read them (`readAll`, or no platform in the index). */
  readonly manifest?: ImageManifest;
  readonly config?: ImageConfig;
}

/** The chosen image, ready for the pipeline, the store or a push. */
export interface WalkedImage {
  readonly entry: ImageEntry;
  /** The indexes above the manifest, root first, with their bytes; empty for a single manifest. */
  readonly indexes: readonly ReadBlob<ImageIndex>[];
  readonly manifest: ReadBlob<ImageManifest>;
  readonly config: ReadBlob<ImageConfig>;
  /** E.g. a single-platform image that is not the host's (only with no explicit platform). */
  readonly warnings: readonly string[];
}

export interface WalkOptions extends ReadOptions {
  /** Wanted platform; the host's when absent. */
  readonly platform?: Platform | undefined;
  /** The user named the platform: a single-platform mismatch is then ERR_PLATFORM_MISMATCH, not a warning. */
  readonly explicitPlatform?: boolean | undefined;
  /** Tag, ref name, manifest/index/config digest or 12+ hex prefix (select.ts). */
  readonly tag?: string | undefined;
  /**
   * Told an image manifest's descriptor before its config is read: a root manifest's (a tag naming a
   * manifest, whose config the walk reads to learn its platform) and the chosen one's (maybe again), not
   * those an index lists. A lazy pull starts looking up the manifest's referrers then, a round trip
   * earlier (src/image/pull.ts).
   */
  readonly onManifest?: ((manifest: Descriptor) => void) | undefined;
}

/** Reads small blobs once per walk (the chosen image's manifest was often read while listing). */
class BlobCache {
  private readonly bytes = new Map<string, Buffer>();
  constructor(private readonly reader: BlobReader, private readonly options: ReadOptions) {}

  /** A manifest or index (`config`: an image config) by descriptor, within its size limit. */
  async get(desc: Descriptor, what: 'manifest' | 'config' = 'manifest'): Promise<Buffer> {
    let bytes = this.bytes.get(desc.digest);
    if (bytes === undefined) {
      const limits = documentLimits();
      if (this.bytes.size >= limits.maxWalkDocuments) {
        throw documentTooLarge('maxWalkDocuments', `${this.reader.where}: the image indexes reach over ${limits.maxWalkDocuments} manifests and indexes (maxWalkDocuments)`);
      }
      const key = what === 'config' ? 'maxConfigBytes' : 'maxManifestBytes';
      bytes = await this.reader.readBytes(desc, limits[key], this.options).catch((err: unknown) => {
        // the reader's refusal, with the setting that raises it
        throw isVmimgError(err, ErrorCode.TOO_LARGE) && err.hint === undefined ? documentTooLarge(key, `${err.message} (${key})`, err) : err;
      });
      this.bytes.set(desc.digest, bytes);
    }
    return bytes;
  }

  async document(desc: Descriptor): Promise<ManifestDocument> {
    return parseManifestDocument(await this.get(desc), desc.mediaType);
  }
}

/**
 * Every image manifest the reader's roots reach, in order (depth first, index order), attestations
 * and non-image entries left out. `readAll` reads each manifest and config (platform and config digest
 * from the config); otherwise only those whose index entry has no platform.
 */
export async function listImageEntries(reader: BlobReader, options: ReadOptions & { readAll?: boolean } = {}): Promise<ImageEntry[]> {
  return enumerate(new BlobCache(reader, options), reader, await reader.roots(options), options.readAll ?? true);
}

async function enumerate(cache: BlobCache, reader: BlobReader, roots: readonly NamedDescriptor[], readAll: boolean, onManifest?: WalkOptions['onManifest']): Promise<ImageEntry[]> {
  const out: ImageEntry[] = [];
  const limits = documentLimits();
  let steps = 0;
  for (let entry = 0; entry < roots.length; entry++) {
    const root = roots[entry]!;
    const stack: { desc: Descriptor; above: Descriptor[] }[] = [{ desc: root.descriptor, above: [] }];
    const seen = new Set<string>(); // an index or manifest listed again under one root is one image
    while (stack.length > 0) {
      const { desc, above } = stack.pop()!;
      if (++steps > limits.maxWalkEntries) {
        throw documentTooLarge('maxWalkEntries', `${reader.where}: the image indexes list over ${limits.maxWalkEntries} entries (maxWalkEntries)`);
      }
      if (seen.has(desc.digest)) continue;
      seen.add(desc.digest);
      if (isAttestation(desc) || (above.length > 0 && !isManifestMediaType(desc.mediaType) && !isIndexMediaType(desc.mediaType))) continue;
      if (above.length > limits.maxIndexDepth) {
        throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${reader.where}: image indexes nested too deeply (over ${limits.maxIndexDepth}, maxIndexDepth)`, {
          hint: 'raise the limit with "limits": {"maxIndexDepth": …} in the config file if the source is trusted',
        });
      }
      let doc: ManifestDocument | undefined;
      if (!isManifestMediaType(desc.mediaType)) {
        doc = await cache.document(desc); // an index, or a root whose type the source did not say
        if (doc.kind === 'index') {
          const chain = [...above, desc];
          for (const child of [...doc.index.manifests].reverse()) stack.push({ desc: child, above: chain });
          continue;
        }
      }
      let platform = desc.platform;
      let read: { manifest: ImageManifest; config: ImageConfig } | undefined;
      if (readAll || platform === undefined) {
        doc ??= await cache.document(desc);
        if (doc.kind !== 'manifest') continue;
        if (above.length === 0) onManifest?.(desc); // a root manifest (a tag's): the one a pull chooses, or an error
        read = { manifest: doc.manifest, config: parseImageConfig(await cache.get(doc.manifest.config, 'config')) };
        platform = configPlatform(read.config);
      }
      out.push({
        names: root.names,
        digests: [desc.digest, ...above.map((d) => d.digest)],
        ...(read !== undefined ? { configDigest: read.manifest.config.digest, ...read } : {}),
        ...(platform !== undefined ? { platform } : {}),
        entry,
        descriptor: desc,
        indexes: above,
        root,
      });
    }
  }
  return out;
}

/**
 * Walks the reader's roots and returns the one image `options` name (see the module comment). Errors
 * (all listing what the source holds): ERR_NOT_FOUND (the tag names nothing), ERR_PLATFORM_MISMATCH,
 * ERR_AMBIGUOUS_IMAGE; ERR_INVALID_MANIFEST for indexes nested deeper than MAX_INDEX_DEPTH.
 */
export async function chooseImage(reader: BlobReader, options: WalkOptions = {}): Promise<WalkedImage> {
  const cache = new BlobCache(reader, options);
  // Local reads are cheap and make every choice and error name config digests; a registry reads what it must.
  const readAll = !isRemoteReader(reader) || (options.tag !== undefined && isDigestSelector(options.tag));
  const entries = await enumerate(cache, reader, await reader.roots(options), readAll, options.onManifest);
  const wanted = options.platform ?? hostPlatform();
  const entry = selectImage(entries, options.tag, wanted, reader.where);
  return readImage(cache, entry, wanted, options.explicitPlatform ?? false, options.onManifest);
}

async function readImage(cache: BlobCache, entry: ImageEntry, wanted: Platform, explicit: boolean, onManifest: WalkOptions['onManifest']): Promise<WalkedImage> {
  const indexes: ReadBlob<ImageIndex>[] = [];
  for (const descriptor of entry.indexes) {
    const doc = await cache.document(descriptor);
    if (doc.kind === 'index') indexes.push({ descriptor, bytes: await cache.get(descriptor), parsed: doc.index });
  }
  const doc = await cache.document(entry.descriptor);
  if (doc.kind !== 'manifest') throw new VmimgError(ErrorCode.INVALID_MANIFEST, `${entry.descriptor.digest} is not an image manifest`);
  const manifestBytes = await cache.get(entry.descriptor);
  // A root descriptor may not have said its media type: the document's own is the truth.
  const manifestDesc = { ...entry.descriptor, mediaType: doc.manifest.mediaType };
  onManifest?.(manifestDesc);
  const configBytes = await cache.get(doc.manifest.config, 'config');
  const config = parseImageConfig(configBytes);
  return {
    entry,
    indexes,
    manifest: { descriptor: manifestDesc, bytes: manifestBytes, parsed: doc.manifest },
    config: { descriptor: doc.manifest.config, bytes: configBytes, parsed: config },
    warnings: platformWarning(config, wanted, explicit),
  };
}

/**
 * Checks a single-platform image against the wanted platform: a mismatch is ERR_PLATFORM_MISMATCH when
 * the user named the platform, else a warning (the host's platform was only a default).
 */
export function platformWarning(config: ImageConfig, wanted: Platform, explicit: boolean): string[] {
  if (checkConfigPlatform(config, wanted, explicit)) return [];
  const have = formatPlatform(configPlatform(config));
  return [`the image is for ${have} only, not ${formatPlatform(wanted)} (pass --platform ${have} to make this explicit)`];
}

/** One platform an image offers: the manifest descriptor and its platform (normalised). */
export interface PlatformEntry {
  /** Absent only when neither the index entry nor the config says (never, for a valid config). */
  readonly platform?: Platform;
  /** The image manifest for this platform. */
  readonly descriptor: Descriptor;
}

/**
 * The platforms a source's images offer, from their index entries (configs read only for entries
 * without a platform, and for a single manifest), attestations left out.
 */
export async function listPlatforms(reader: BlobReader, options: ReadOptions = {}): Promise<PlatformEntry[]> {
  const entries = await listImageEntries(reader, { ...options, readAll: false });
  return entries.map((e) => ({ ...(e.platform !== undefined ? { platform: normalizePlatform(e.platform) } : {}), descriptor: e.descriptor }));
}
