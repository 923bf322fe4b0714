/** The two PushSinks: a registry repository (uploads through a PushSession) and an OCI layout directory. */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../manifest/types.js';
import { formatReference } from '../reference/index.js';
import type { Reference } from '../reference/types.js';
import type { RegistryClientOptions } from '../registry/client.js';
import { PushSession } from '../registry/push-session.js';
import { BlobUploader, DEFAULT_CHUNK_BYTES, type UploadJournal } from '../registry/upload.js';
import type { NoticeListener } from '../util/retry.js';
import { OciLayoutWriter } from './oci-layout.js';
import type { PushSink } from './types.js';

export interface RegistrySinkOptions extends RegistryClientOptions {
  /** Uploads larger than this go in PATCH chunks of this size (default 64 MiB). */
  readonly chunkBytes?: number;
  /** Where chunked upload sessions are kept for a rerun (upload-journal.ts); none by default. */
  readonly journal?: UploadJournal;
}

/** A PushSink writing to `ref`'s repository; call close() when done. */
export class RegistrySink implements PushSink {
  readonly name: string;
  readonly registry: string;
  private readonly session: PushSession;
  private readonly uploader: BlobUploader;

  constructor(ref: Reference, options: RegistrySinkOptions = {}) {
    this.name = formatReference(ref);
    this.registry = ref.registry;
    this.session = new PushSession(ref.registry, ref.repository, options);
    this.uploader = new BlobUploader(this.session, options.chunkBytes ?? DEFAULT_CHUNK_BYTES, options.journal);
    this.onNotice = options.onNotice;
  }

  private readonly onNotice: NoticeListener | undefined;

  has(desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
    return this.uploader.has(desc, signal);
  }

  mount(desc: Descriptor, fromRepository: string, signal?: AbortSignal): Promise<boolean> {
    return this.uploader.mount(desc, fromRepository, signal);
  }

  writeBlob(desc: Descriptor, open: (offset: number) => Promise<Readable>, onBytes: (sent: number) => void, signal?: AbortSignal, verified?: boolean): Promise<void> {
    return this.uploader.upload(desc, open, { signal, onProgress: onBytes, onNotice: this.onNotice, verified: verified === true });
  }

  async putManifest(desc: Descriptor, bytes: Buffer, tag: string | undefined, _root: boolean, signal?: AbortSignal): Promise<void> {
    await this.uploader.putManifest(tag ?? desc.digest, bytes, desc.mediaType, signal);
  }

  close(): Promise<void> {
    return this.session.close();
  }
}

/**
 * A PushSink writing into an OCI image layout directory, naming the image `refName` in index.json. A
 * name already given to another image is ERR_DESTINATION_EXISTS unless `replace` (checkName says so
 * before any blob is copied).
 */
export class OciLayoutSink implements PushSink {
  readonly name: string;
  private readonly writer: OciLayoutWriter;
  private ready: Promise<void> | undefined;

  constructor(
    dir: string,
    private readonly options: { readonly replace?: boolean } = {},
  ) {
    this.name = `oci:${dir}`;
    this.writer = new OciLayoutWriter(dir);
  }

  private init(): Promise<void> {
    this.ready ??= this.writer.init();
    return this.ready;
  }

  /** Refuses early what `putManifest` would refuse last: `refName` naming another image than `desc`. */
  async checkName(desc: Descriptor, refName: string): Promise<void> {
    await this.init();
    await this.writer.checkName(desc, refName, this.options.replace ?? false);
  }

  async has(desc: Descriptor): Promise<boolean> {
    await this.init();
    return this.writer.has(desc);
  }

  async writeBlob(desc: Descriptor, open: (offset: number) => Promise<Readable>, onBytes: (sent: number) => void): Promise<void> {
    await this.init();
    let sent = 0;
    await this.writer.writeBlob(desc, await open(0), (n) => onBytes((sent += n)));
  }

  /** Child manifests are stored as blobs; the pushed one is also listed in index.json (as `tag`, when given). */
  async putManifest(desc: Descriptor, bytes: Buffer, tag: string | undefined, root: boolean): Promise<void> {
    await this.init();
    await this.writer.writeBytes(desc, bytes);
    if (!root) return;
    await this.writer.tag(desc, tag, this.options.replace ?? false);
    await this.writer.commit();
  }

  /** Removes what this push wrote into the layout (a new layout entirely); what was there before stays. */
  async abort(): Promise<void> {
    if (this.ready !== undefined) await this.writer.abort();
  }
}
