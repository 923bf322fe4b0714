/**
 * Typed, throttled progress events for preparing an image: one stream per blob and one for the image.
 * The library emits; the CLI draws (bars on a TTY, log lines or JSON lines otherwise).
 */
import type { NetworkNotice } from '../util/retry.js';

/**
 * A layer's phases. Verification has no state of its own: a layer's bytes are verified while they
 * stream (digest of the blob, diff_id of the tar) and checked at the end of 'extracting', before 'done'.
 * 'cached' means the flattened layer was already in the cache (nothing to fetch or convert).
 */
export type LayerState = 'cached' | 'downloading' | 'extracting' | 'done';
export type ImageState = 'resolving' | 'downloading' | 'writing' | 'done';

export interface LayerProgress {
  type: 'layer';
  /** 0-based position in the image, bottom first. */
  index: number;
  count: number;
  digest: string;
  state: LayerState;
  bytesDone: number;
  /** Size of the layer as distributed (compressed), when known. */
  bytesTotal?: number;
  bytesPerSecond?: number;
  etaSeconds?: number;
}

export interface ImageProgress {
  type: 'image';
  state: ImageState;
  layersDone: number;
  layerCount: number;
  bytesDone: number;
  bytesTotal?: number;
}

/** Something the user should know that does not stop the work (e.g. a platform other than the host's). */
export interface WarningEvent {
  type: 'warning';
  message: string;
}

/**
 * A network wait or stall, as it happens: `retrying in 12 s: HTTP 429 from HOST` before another
 * attempt, `no data from HOST for 5 s` while a body stalls. `layer`/`count` say whose, when a layer's.
 */
interface NoticeFields {
  /** What is fetched, e.g. `blob sha256:0123…` or `manifest registry/repo:tag`. */
  what: string;
  message: string;
  /** 0-based layer index and layer count, when the notice is about a layer. */
  layer?: number;
  count?: number;
}

/** A wait before another attempt: its length, the attempt that failed, and the most allowed in a row. */
export interface RetryEvent extends NoticeFields {
  type: 'retry';
  delaySeconds: number;
  attempt: number;
  attempts: number;
}

/** A body that sent nothing for `seconds` so far. */
export interface StallEvent extends NoticeFields {
  type: 'stall';
  seconds: number;
}

export type NoticeEvent = RetryEvent | StallEvent;

export type ProgressEvent = LayerProgress | ImageProgress | WarningEvent | NoticeEvent;
export type ProgressListener = (event: ProgressEvent) => void;

/** A NetworkNotice (util/retry.ts) as a progress event, optionally tagged with its layer. */
export function noticeEvent(n: NetworkNotice, layer?: { index: number; count: number }): NoticeEvent {
  const where = layer !== undefined ? { layer: layer.index, count: layer.count } : {};
  if (n.kind === 'stall') return { type: 'stall', what: n.what, message: n.message, seconds: n.seconds, ...where };
  const delaySeconds = Math.round(n.delayMs / 100) / 10;
  return { type: 'retry', what: n.what, message: n.message, delaySeconds, attempt: n.attempt, attempts: n.attempts, ...where };
}

const THROTTLE_MS = 100;

interface LayerSlot {
  digest: string;
  total?: number;
  state: LayerState;
  done: number;
  startedAt: number;
  lastEmit: number;
}

export class ProgressTracker {
  readonly count: number;
  private readonly slots: LayerSlot[];
  private readonly listener: ProgressListener | undefined;

  constructor(layers: readonly { diffId: string; digest?: string; size?: number }[], listener?: ProgressListener) {
    this.count = layers.length;
    this.listener = listener;
    this.slots = layers.map((l) => ({
      digest: l.digest ?? l.diffId,
      ...(l.size !== undefined ? { total: l.size } : {}),
      state: 'downloading',
      done: 0,
      startedAt: Date.now(),
      lastEmit: 0,
    }));
  }

  layer(index: number, state: LayerState, bytesDone?: number): void {
    const slot = this.slots[index];
    if (!slot || !this.listener) return;
    const now = Date.now();
    const changed = slot.state !== state;
    if (changed) {
      slot.state = state;
      slot.startedAt = now;
    }
    slot.done = bytesDone ?? (state === 'done' || state === 'cached' ? slot.total ?? slot.done : slot.done);
    if (!changed && now - slot.lastEmit < THROTTLE_MS) return;
    slot.lastEmit = now;
    const elapsed = (now - slot.startedAt) / 1000;
    const rate = elapsed > 0.2 && slot.done > 0 ? slot.done / elapsed : undefined;
    const event: LayerProgress = {
      type: 'layer',
      index,
      count: this.count,
      digest: slot.digest,
      state,
      bytesDone: slot.done,
      ...(slot.total !== undefined ? { bytesTotal: slot.total } : {}),
      ...(rate !== undefined ? { bytesPerSecond: Math.round(rate) } : {}),
      ...(rate && slot.total !== undefined && state !== 'done' ? { etaSeconds: Math.max(0, (slot.total - slot.done) / rate) } : {}),
    };
    this.listener(event);
    this.image('downloading');
  }

  /** A retry wait or stall of layer `index`'s download. */
  notice(index: number, n: NetworkNotice): void {
    this.listener?.(noticeEvent(n, { index, count: this.count }));
  }

  image(state: ImageState): void {
    if (!this.listener) return;
    const totals = this.slots.map((s) => s.total);
    const known = totals.every((t) => t !== undefined);
    this.listener({
      type: 'image',
      state,
      layersDone: this.slots.filter((s) => s.state === 'done' || s.state === 'cached').length,
      layerCount: this.count,
      bytesDone: this.slots.reduce((sum, s) => sum + (s.state === 'downloading' ? s.done : s.total ?? s.done), 0),
      ...(known ? { bytesTotal: totals.reduce((a, b) => a! + b!, 0) } : {}),
    });
  }
}
