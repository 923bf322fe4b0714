/**
 * OCI image layouts as BlobReaders — the example of a source (see ./README.md): a layout is
 * `oci-layout` + `index.json` + `blobs/<alg>/<hex>`, whether it is a directory (what `skopeo copy …
 * oci:DIR:TAG`, `umoci` and buildah write) or the members of an OCI archive tar. The two differ only
 * in how a named file is read (LayoutFiles); roots are index.json's entries with their ref names.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { assertDigest, digestAlgorithm, digestHex, digestOf } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { withRegion } from '../util/file-region.js';
import { documentLimits, MediaType, parseManifestDocument, type Descriptor } from '../manifest/index.js';
import type { TarMembers } from './tar-members.js';
import type { BlobReader, NamedDescriptor, OpenBlobOptions, SourceKind } from './blob-reader.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';

/** Names an index.json entry gives its image: containerd's full name first, then the OCI ref name. */
export function namesOf(desc: Descriptor): string[] {
  const a = desc.annotations;
  return [a?.[CONTAINERD_NAME_ANNOTATION], a?.[REF_NAME_ANNOTATION]].filter((n): n is string => n !== undefined);
}

/** How a layout's files are read: relative names (`index.json`, `blobs/sha256/<hex>`). */
export interface LayoutFiles {
  readonly where: string;
  /** The file's size in bytes, undefined when it is absent. */
  size(name: string): Promise<number | undefined>;
  /** The whole file; ERR_TOO_LARGE above `max`. */
  read(name: string, max: number): Promise<Buffer>;
  /** `length` bytes from `offset` (both already checked against the size). */
  stream(name: string, offset: number, length: number): Readable;
}

/** A layout directory's files. */
export function directoryFiles(dir: string): LayoutFiles {
  return {
    where: dir,
    size: async (name) => {
      const st = await stat(join(dir, name)).catch(() => undefined);
      return st?.isFile() ? st.size : undefined;
    },
    read: async (name, max) => {
      const path = join(dir, name);
      const handle = await open(path, 'r');
      try {
        const { size } = await handle.stat();
        if (size > max) throw new VmimgError(ErrorCode.TOO_LARGE, `${path} is ${size} bytes, over the ${max}-byte limit`);
        return await readFile(handle);
      } finally {
        await handle.close();
      }
    },
    stream: (name, offset, length) =>
      length === 0 ? Readable.from([]) : withRegion(createReadStream(join(dir, name), { start: offset, end: offset + length - 1, highWaterMark: 1 << 20 }), { path: join(dir, name), offset, length }),
  };
}

/** An archive's members as a layout's files. */
export function tarFiles(tar: TarMembers): LayoutFiles {
  return {
    where: tar.path,
    size: async (name) => tar.find(name)?.size,
    read: (name, max) => tar.read(name, max),
    stream: (name, offset, length) => tar.stream(name, offset, length),
  };
}

/**
 * A blob whose bytes are not as many as its descriptor says: refused before it is read (the OCI image
 * spec's descriptor: "size ... MUST" match; a flattener bounds a layer's expansion by that size).
 */
export function sizeMismatch(what: string, actual: number, expected: number): VmimgError {
  return new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what} is ${actual} bytes, its descriptor says ${expected}`, { details: { expectedSize: expected, actualSize: actual } });
}

/** Where a blob lives in a layout (the digest is validated: it becomes a path). */
export function blobPath(digest: string): string {
  return `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

export class OciLayoutReader implements BlobReader {
  private constructor(
    readonly kind: SourceKind,
    private readonly files: LayoutFiles,
  ) {}

  get where(): string {
    return this.files.where;
  }

  /**
   * Checks the layout marker and returns a reader. ERR_INVALID_ARCHIVE when `oci-layout` or
   * `index.json` is missing, or `oci-layout` is not `{"imageLayoutVersion": "1.0.0"}`-shaped.
   */
  static async open(files: LayoutFiles, kind: SourceKind): Promise<OciLayoutReader> {
    const missing = [];
    for (const name of ['oci-layout', 'index.json']) if ((await files.size(name)) === undefined) missing.push(name);
    if (missing.length > 0) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${files.where}: not an OCI image layout (no ${missing.join(' and no ')})`);
    let marker: unknown;
    try {
      marker = JSON.parse((await files.read('oci-layout', 4096)).toString('utf8'));
    } catch (err) {
      throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${files.where}: oci-layout is not JSON`, { cause: err });
    }
    if (typeof (marker as { imageLayoutVersion?: unknown })?.imageLayoutVersion !== 'string') {
      throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${files.where}: oci-layout has no imageLayoutVersion`);
    }
    return new OciLayoutReader(kind, files);
  }

  /** index.json's entries, in order, with their names. */
  async roots(): Promise<NamedDescriptor[]> {
    const doc = parseManifestDocument(await this.files.read('index.json', documentLimits().maxManifestBytes), MediaType.OCI_INDEX);
    if (doc.kind !== 'index') throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${this.where}: index.json is not an image index`);
    return doc.index.manifests.map((descriptor) => ({ descriptor, names: namesOf(descriptor) }));
  }

  async open(desc: Descriptor, options: OpenBlobOptions = {}): Promise<Readable> {
    const name = blobPath(desc.digest);
    const size = await this.files.size(name);
    if (size === undefined) throw this.missing(desc);
    if (size !== desc.size) throw sizeMismatch(`${this.where}: blob ${desc.digest}`, size, desc.size);
    const offset = options.offset ?? 0;
    if (offset > size) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${this.where}: blob ${desc.digest}: offset ${offset} is past its end (${size} bytes)`);
    return this.files.stream(name, offset, Math.min(options.length ?? size - offset, size - offset));
  }

  async readBytes(desc: Descriptor, maxBytes: number): Promise<Buffer> {
    const what = `${this.where}: blob ${desc.digest}`;
    if (desc.size > maxBytes) throw new VmimgError(ErrorCode.TOO_LARGE, `${what} is ${desc.size} bytes, over the ${maxBytes}-byte limit`);
    const name = blobPath(desc.digest);
    if ((await this.files.size(name)) === undefined) throw this.missing(desc);
    const bytes = await this.files.read(name, maxBytes);
    if (bytes.length !== desc.size) throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `${what} is ${bytes.length} bytes, its descriptor says ${desc.size}`);
    assertDigest(what, desc.digest, digestOf(bytes, digestAlgorithm(desc.digest)));
    return bytes;
  }

  async close(): Promise<void> {}

  private missing(desc: Descriptor): VmimgError {
    return new VmimgError(ErrorCode.NOT_FOUND, `${this.where}: blob ${desc.digest} is not in the layout`);
  }
}
