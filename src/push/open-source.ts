/**
 * Choosing what to push from a BlobReader, through the one index walk (src/content/walk.ts): the
 * platform's manifest, or with `all` the index it was listed in (the source's root). A classic
 * `docker save` image has no manifest of its own: the walk's synthesised one is pushed, and a note
 * says so (its digest cannot be the source's: the source had none).
 */
import { SYNTHESIZED_ANNOTATION } from '../content/docker-save.js';
import type { BlobReader } from '../content/blob-reader.js';
import { chooseImage } from '../content/walk.js';
import type { Platform } from '../platform/types.js';
import { readerSource } from './reader-source.js';
import type { PushSource } from './types.js';

export interface PushSourceOptions {
  /** Platform to push (default: the host's); with `all`, only picks which index when the source has several. */
  readonly platform?: Platform | undefined;
  /** The user named the platform (a single-platform mismatch is then an error, not a warning). */
  readonly explicitPlatform?: boolean;
  /** Which image of a multi-image source: tag, ref name, digest or 12+ hex prefix (src/content/select.ts). */
  readonly tag?: string | undefined;
  /** Push the whole index the chosen image is listed in. */
  readonly all?: boolean;
  /** The registry repository of a registry reader, for cross-repository mounts. */
  readonly origin?: { readonly registry: string; readonly repository: string };
  readonly signal?: AbortSignal;
}

/**
 * A PushSource over `reader`'s chosen image (see the module comment); closing it closes the reader.
 * Errors are the walk's: ERR_NOT_FOUND, ERR_PLATFORM_MISMATCH, ERR_AMBIGUOUS_IMAGE listing what the
 * source holds.
 */
export async function pushSourceFromReader(reader: BlobReader, options: PushSourceOptions = {}): Promise<PushSource> {
  const walked = await chooseImage(reader, {
    platform: options.platform,
    explicitPlatform: options.explicitPlatform ?? false,
    tag: options.tag,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const root = options.all === true && walked.indexes.length > 0 ? walked.indexes[0]! : walked.manifest;
  const synthesized = walked.entry.root.descriptor.annotations?.[SYNTHESIZED_ANNOTATION] !== undefined;
  const notes = [...walked.warnings];
  if (synthesized) {
    notes.push(
      `${reader.where} is a classic docker save tar, which holds no manifest: pushing a freshly built Docker v2 manifest ` +
        `(${walked.manifest.descriptor.digest}) over its layers as saved`,
    );
  }
  return readerSource(reader, root.descriptor, { rootBytes: root.bytes, notes, names: walked.entry.root.names, ...(options.origin ? { origin: options.origin } : {}), ...(options.signal ? { signal: options.signal } : {}) });
}
