/**
 * Typed, throttled progress events for preparing an image: one stream per blob and one for the image.
 * The library emits; the CLI draws (bars on a TTY, log lines or JSON lines otherwise).
 */

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

export type ProgressEvent = LayerProgress | ImageProgress | WarningEvent;
export type ProgressListener = (event: ProgressEvent) => void;

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
