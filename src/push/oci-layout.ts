/**
 * An OCI image layout directory as a sink (image-spec image-layout.md): `oci-layout`, `index.json`
 * naming each pushed image by `org.opencontainers.image.ref.name`, and `blobs/<alg>/<hex>`. Blobs are
 * written to a temp name, verified against their descriptor, and renamed; `index.json` is replaced
 * atomically and last, so a reader never sees an image whose blobs are not all in place.
 * A new layout is written into a temp sibling (`.NAME.tmp-<pid>-<hex>`) and renamed into place by
 * commit(), as the cache writes; abort() removes what this run wrote (the temp sibling, or the blobs it
 * added to an existing layout) and keeps what was there before.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { digestAlgorithm, digestHex, digestOf, VerifyingStream } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { MediaType } from '../manifest/media-types.js';
import type { Descriptor } from '../manifest/types.js';
import { trackTempFile } from '../util/temp-files.js';

/** The annotation naming an image in an OCI layout's index.json. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

const LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: '1.0.0' });

interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** What the destination was when the run started: nothing, an empty directory, or a layout to add to. */
type Start = 'new' | 'empty' | 'layout';

/** Writes blobs and manifests into an OCI image layout directory (created when missing). */
export class OciLayoutWriter {
  /** Where this run writes: `dir` when it already was a layout, else the temp sibling commit() moves into place. */
  private root: string;
  private start: Start = 'layout';
  /** Blobs this run added to an existing layout (abort() removes them). */
  private readonly added: string[] = [];
  private forgetTemp: () => void = () => {};

  constructor(readonly dir: string) {
    this.root = dir;
  }

  /**
   * Checks the destination and prepares where to write: an existing layout is added to (its blobs and
   * index kept), a new or empty directory is written as a temp sibling first. A directory that holds
   * other things and no `oci-layout` is ERR_DESTINATION_EXISTS: never mix an image into it.
   */
  async init(): Promise<void> {
    const entries = await fs.readdir(this.dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (entries !== undefined && entries.includes('oci-layout')) {
      for (const sub of ['blobs', join('blobs', 'sha256')]) await this.realDir(sub);
      return;
    }
    if (entries !== undefined && entries.length > 0) {
      throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${this.dir} is not empty and is not an OCI layout (no oci-layout file)`, {
        hint: 'Name an empty or new directory, or an existing OCI layout to add the image to.',
      });
    }
    this.start = entries === undefined ? 'new' : 'empty';
    const abs = resolve(this.dir); // `.` and `dir/` have a parent and a name too
    await fs.mkdir(dirname(abs), { recursive: true });
    this.root = join(dirname(abs), `.${basename(abs)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    this.forgetTemp = trackTempFile(this.root);
    await fs.mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
    await fs.writeFile(join(this.root, 'oci-layout'), LAYOUT_FILE);
  }

  /**
   * Puts a new layout in place once its index.json is written: the temp sibling renamed to `dir` (or,
   * for a directory that existed empty, its entries moved in, index.json last). A no-op for a layout
   * that existed, whose index.json tag() already replaced.
   */
  async commit(): Promise<void> {
    if (this.start === 'new') await fs.rename(this.root, this.dir);
    if (this.start === 'empty') {
      for (const name of ['blobs', 'oci-layout', 'index.json']) await fs.rename(join(this.root, name), join(this.dir, name));
      await fs.rmdir(this.root);
    }
    this.forgetTemp();
    this.root = this.dir;
    this.start = 'layout';
    this.added.length = 0;
  }

  /** After a failure: removes what this run wrote (the temp sibling, or the blobs it added), never what was there before. */
  async abort(): Promise<void> {
    if (this.start !== 'layout') await fs.rm(this.root, { recursive: true, force: true });
    else for (const path of this.added.splice(0)) await fs.rm(path, { force: true });
    this.forgetTemp();
  }

  /** Creates `sub` as a directory of the layout; a symlink there (to anywhere) is refused: blobs stay inside. */
  private async realDir(sub: string): Promise<void> {
    const path = join(this.dir, sub);
    const st = await fs.lstat(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (st === undefined) {
      await fs.mkdir(path);
      return;
    }
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${path} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}: refusing to write the layout's blobs anywhere but inside it`, {
        hint: 'export into a new directory, or make blobs/ a plain directory',
      });
    }
  }

  /** Path of a blob in the layout. */
  blobPath(digest: string): string {
    return join(this.root, 'blobs', digestAlgorithm(digest), digestHex(digest));
  }

  /**
   * True when the blob is present with the descriptor's size (blobs are only ever renamed in complete).
   * A symlink is not a blob of the layout: it is written over.
   */
  async has(desc: Descriptor): Promise<boolean> {
    const st = await fs.lstat(this.blobPath(desc.digest)).catch(() => undefined);
    return st !== undefined && st.isFile() && st.size === desc.size;
  }

  /** Copies a blob in, verified against `desc` (ERR_DIGEST_MISMATCH / ERR_TOO_LARGE leave nothing behind). */
  async writeBlob(desc: Descriptor, source: Readable, onBytes?: (n: number) => void): Promise<void> {
    const final = this.blobPath(desc.digest);
    await fs.mkdir(join(this.root, 'blobs', digestAlgorithm(desc.digest)), { recursive: true });
    const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const verify = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}` });
    if (onBytes) verify.on('data', (b: Buffer) => onBytes(b.length));
    try {
      await pipeline(source, verify, createWriteStream(tmp, { flags: 'wx' }));
      await this.place(tmp, final);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  /** Writes a small blob (manifest, config, index) given as bytes. */
  async writeBytes(desc: Descriptor, bytes: Buffer): Promise<void> {
    if (digestOf(bytes, digestAlgorithm(desc.digest)) !== desc.digest || bytes.length !== desc.size) {
      throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `blob ${desc.digest}: bytes do not match the descriptor`);
    }
    if (await this.has(desc)) return;
    const final = this.blobPath(desc.digest);
    const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fs.writeFile(tmp, bytes, { flag: 'wx' });
      await this.place(tmp, final);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  /** Renames a verified blob into place, remembering it as this run's when it adds to an existing layout. */
  private async place(tmp: string, final: string): Promise<void> {
    if (this.start === 'layout') this.added.push(final);
    await fs.rename(tmp, final);
  }

  /**
   * ERR_DESTINATION_EXISTS when index.json already names another image `refName` and `replace` is not
   * set: a layout's names are the user's, never replaced without a word.
   */
  async checkName(desc: Descriptor, refName: string, replace: boolean): Promise<void> {
    this.refuseTaken(await readIndex(join(this.root, 'index.json')), desc, refName, replace);
  }

  private refuseTaken(index: LayoutIndex, desc: Descriptor, refName: string, replace: boolean): void {
    const taken = index.manifests.find((d) => d.annotations?.[REF_NAME] === refName && d.digest !== desc.digest);
    if (taken === undefined || replace) return;
    throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `oci:${this.dir}:${refName} already names another image (${taken.digest})`, {
      hint: `--force replaces it; oci:${this.dir}:NAME as the destination names the image NAME instead`,
    });
  }

  /**
   * Names `desc` (a manifest or index already written) in index.json as `refName`, replacing an entry
   * of the same name only with `replace` (else see checkName); without a name the descriptor is added
   * once. Written last, atomically.
   */
  async tag(desc: Descriptor, refName: string | undefined, replace = false): Promise<void> {
    const path = join(this.root, 'index.json');
    const index = await readIndex(path);
    if (refName !== undefined) this.refuseTaken(index, desc, refName, replace);
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      ...(desc.platform ? { platform: desc.platform } : {}),
      ...(refName !== undefined ? { annotations: { [REF_NAME]: refName } } : {}),
    };
    const keep = index.manifests.filter((d) =>
      refName !== undefined ? d.annotations?.[REF_NAME] !== refName : !(d.digest === desc.digest && d.annotations?.[REF_NAME] === undefined),
    );
    index.manifests = [...keep, entry];
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fs.writeFile(tmp, `${JSON.stringify(index)}\n`);
      await fs.rename(tmp, path);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }
}

async function readIndex(path: string): Promise<LayoutIndex> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [] };
    throw err;
  }
  const doc = JSON.parse(text) as Partial<LayoutIndex>;
  if (doc.schemaVersion !== 2 || !Array.isArray(doc.manifests)) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `${path} is not an OCI image index`);
  }
  return doc as LayoutIndex;
}
