/**
 * Draws the library's progress events: cli-progress bars on a TTY (one per blob plus a total),
 * one log line per state change otherwise, JSON lines with --json, nothing with --quiet.
 * Everything goes to stderr so stdout stays clean for results.
 */
import cliProgress from 'cli-progress';
import type { LayerProgress, ProgressEvent, ProgressListener } from '../index.js';
import { colorEnabled, humanBytes, humanDuration, paint, shortDigest } from './format.js';

export type ProgressMode = 'tty' | 'log' | 'json' | 'quiet';

export interface ProgressRenderer {
  readonly listener: ProgressListener;
  /** Stops drawing (restores the cursor on a TTY). Idempotent. */
  done(): void;
}

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): ProgressRenderer {
  switch (mode) {
    case 'quiet':
      return { listener: () => {}, done: () => {} };
    case 'json':
      return { listener: (e) => stream.write(`${JSON.stringify({ progress: e })}\n`), done: () => {} };
    case 'log':
      return logProgress(stream);
    case 'tty':
      return barProgress(stream);
  }
}

function logProgress(stream: NodeJS.WriteStream): ProgressRenderer {
  const states = new Map<number, string>();
  let imageState: string | undefined;
  const listener: ProgressListener = (e) => {
    if (e.type === 'layer') {
      if (states.get(e.index) === e.state) return;
      states.set(e.index, e.state);
      const size = e.bytesTotal !== undefined ? ` (${humanBytes(e.bytesTotal)})` : '';
      stream.write(`layer ${e.index + 1}/${e.count} ${shortDigest(e.digest)}: ${e.state}${size}\n`);
    } else if (e.state !== imageState) {
      imageState = e.state;
      if (e.state !== 'downloading') stream.write(`image: ${e.state}\n`);
    }
  };
  return { listener, done: () => {} };
}

interface BarPayload {
  label: string;
  bytes: string;
  speed: string;
  eta: string;
  state: string;
}

function barProgress(stream: NodeJS.WriteStream): ProgressRenderer {
  const color = colorEnabled(stream);
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      format: '{label} {bar} {percentage}% {bytes} {speed} ETA {eta} {state}',
      barsize: 20,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      fps: 10,
      emptyOnZero: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<number, cliProgress.SingleBar>();
  let total: cliProgress.SingleBar | undefined;
  let stopped = false;
  const state = (s: string): string => paint(color, s === 'done' || s === 'cached' ? 32 : s === 'extracting' ? 33 : 36, s);

  const onLayer = (e: LayerProgress): void => {
    const max = Math.max(1, e.bytesTotal ?? e.bytesDone);
    const finished = e.state === 'done' || e.state === 'cached';
    const payload: BarPayload = {
      label: `${String(e.index + 1).padStart(String(e.count).length)}/${e.count} ${shortDigest(e.digest)}`,
      bytes: `${humanBytes(e.bytesDone)}/${humanBytes(e.bytesTotal)}`.padEnd(19),
      speed: e.bytesPerSecond !== undefined && !finished ? `${humanBytes(e.bytesPerSecond)}/s`.padEnd(11) : ''.padEnd(11),
      eta: finished ? '0s' : humanDuration(e.etaSeconds),
      state: state(e.state),
    };
    let bar = bars.get(e.index);
    if (bar === undefined) {
      bar = multibar.create(max, 0, payload);
      bars.set(e.index, bar);
    }
    bar.setTotal(max);
    bar.update(finished ? max : Math.min(e.bytesDone, max), payload);
  };

  const listener: ProgressListener = (e: ProgressEvent) => {
    if (stopped) return;
    if (e.type === 'layer') return onLayer(e);
    const max = Math.max(1, e.bytesTotal ?? e.bytesDone);
    const payload: BarPayload = {
      label: 'total'.padEnd(`${e.layerCount}/${e.layerCount} 0123456789ab`.length),
      bytes: `${humanBytes(e.bytesDone)}/${humanBytes(e.bytesTotal)}`.padEnd(19),
      speed: `${e.layersDone}/${e.layerCount} layers`.padEnd(11),
      eta: '--',
      state: state(e.state),
    };
    total ??= multibar.create(max, 0, payload);
    total.setTotal(max);
    total.update(e.state === 'done' ? max : Math.min(e.bytesDone, max), payload);
  };
  return {
    listener,
    done: () => {
      if (stopped) return;
      stopped = true;
      multibar.stop();
    },
  };
}
