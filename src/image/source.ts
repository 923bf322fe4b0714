/**
 * An image, wherever it comes from, reduced to what the preparation pipeline needs: the parsed config
 * and an ordered list of layers that open as streams. Sources are BlobReaders (src/content/); one
 * function turns any reader into an ImageSource (reader-source.ts), and every source feeds the same
 * pipeline (src/image/prepare.ts).
 */
import type { Readable } from 'node:stream';
import type { ImageConfig } from '../manifest/index.js';
import type { ImageSourceInfo } from './runtime-config.js';
import type { NoticeListener } from '../util/retry.js';
import type { Descriptor } from '../manifest/types.js';

export interface OpenLayerOptions {
  signal?: AbortSignal | undefined;
  /** Bytes made durable so far, while a source downloads. */
  onProgress?: (bytesDone: number) => void;
  /** Retry waits and stalls while a source downloads. */
  onNotice?: NoticeListener;
}

export interface SourceLayer {
  /** Uncompressed digest from the config's rootfs.diff_ids: the layer's key in the cache. */
  diffId: string;
  /** Digest of the bytes `open()` yields (compressed or not), when the source knows it. */
  digest?: string;
  /** Size of the bytes `open()` yields, when known. */
  size?: number;
  mediaType?: string;
  /**
   * Opens the layer's bytes (any compression: the flattener sniffs it). Sources that download
   * make the bytes durable and verified first, so an interrupted run resumes.
   */
  open(options?: OpenLayerOptions): Promise<Readable>;
  /**
   * Forgets a stored copy of the layer's bytes that failed verification, so `open()` fetches them
   * again; resolves true when there was one. Only sources that keep downloaded copies have it.
   */
  invalidate?(): Promise<boolean>;
  /**
   * For bytes `open()` passed on before they were verified (a download teed into the consumer): the
   * download's outcome. Resolves true when they were the verified blob's, false when the store replaced
   * some (the consumer should read the blob again), rejects with the store's error. A consumer failing
   * on such bytes awaits this first: the store's verdict (ERR_DIGEST_MISMATCH) wins over a decoder's.
   * Undefined when the bytes came verified.
   */
  verdict?(): Promise<boolean> | undefined;
}

export interface ImageSource {
  info: Omit<ImageSourceInfo, 'createdAt'>;
  config: ImageConfig;
  layers: SourceLayer[];
  /**
   * The small blobs the image was resolved through — indexes (top first), manifest, config — with their
   * exact bytes (digest-checked): the pipeline keeps them in the store so the image can be pushed or
   * served byte for byte without the source. A synthesised `docker save` manifest is not among them.
   */
  documents?: readonly { readonly descriptor: Descriptor; readonly bytes: Buffer }[];
  /** Things worth telling the user (reported as progress warnings). */
  warnings?: string[];
  /** Releases what the source holds (open files, connections). */
  close?(): Promise<void>;
}
