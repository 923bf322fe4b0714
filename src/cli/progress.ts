/**
 * Draws the library's progress events: cli-progress bars on a TTY (one per blob plus a total),
 * one log line per state change otherwise, JSON lines with --json, nothing with --quiet.
 * Everything goes to stderr so stdout stays clean for results.
 */
import { createRequire } from 'node:module';
import type cliProgressTypes from 'cli-progress';
import type { LayerProgress, NoticeEvent, ProgressEvent, ProgressListener } from '../index.js';
import { escapeTerminal } from './escape.js';
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
    if (e.type === 'warning') {
      stream.write(`warning: ${escapeTerminal(e.message)}\n`);
    } else if (e.type === 'retry' || e.type === 'stall') {
      stream.write(`${noticeLine(e)}\n`);
    } else if (e.type === 'layer') {
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

/** `layer 2/3 sha256:0123…: retrying in 12 s: HTTP 429 from HOST`, or the same with what was fetched. */
function noticeLine(e: NoticeEvent): string {
  const who = e.layer !== undefined && e.count !== undefined ? `layer ${e.layer + 1}/${e.count}` : e.what;
  return escapeTerminal(`${who}: ${e.message}`);
}

// cli-progress overrides payload keys it computes itself (eta, value, total...): ours have other names.
interface BarPayload {
  label: string;
  bytes: string;
  speed: string;
  etaText: string;
  state: string;
}

const STATE_WIDTH = 'downloading'.length;

/**
 * Bars sized to the terminal: label 12 + state 11 + bytes 17 + speed 10 + ETA 9 and the spaces take 66
 * columns besides the bar; below 72 columns the bytes column goes, so speed and ETA stay visible.
 */
function createMultibar(stream: NodeJS.WriteStream): cliProgressTypes.MultiBar {
  // loaded only for bars: a command without a terminal (scripts, -q, --json) never pays its ~20 modules
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof cliProgressTypes;
  const columns = stream.columns > 0 ? stream.columns : 80;
  const wide = columns >= 72;
  return new cliProgress.MultiBar(
    {
      stream,
      format: wide ? '{label} {state} {bar} {bytes} {speed} {etaText}' : '{label} {state} {bar} {speed} {etaText}',
      barsize: Math.max(4, Math.min(30, columns - (wide ? 66 : 48))),
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      fps: 10,
      emptyOnZero: true,
    },
    cliProgress.Presets.shades_classic,
  );
}

function barProgress(stream: NodeJS.WriteStream): ProgressRenderer {
  const color = colorEnabled(stream);
  const multibar = createMultibar(stream);
  const bars = new Map<number, cliProgressTypes.SingleBar>();
  let total: cliProgressTypes.SingleBar | undefined;
  let stopped = false;
  const state = (s: string): string =>
    paint(color, s === 'done' || s === 'cached' ? 32 : s === 'extracting' ? 33 : 36, s.padEnd(STATE_WIDTH));

  const blank = (label: string, st: string): BarPayload => ({ label, bytes: ''.padEnd(17), speed: ''.padEnd(10), etaText: '', state: state(st) });
  const labelOf = (i: number, count: number, digest: string): string =>
    `${String(i + 1).padStart(String(count).length)}/${count} ${shortDigest(digest).slice(0, 8)}`;

  // All layer bars first, in layer order, then the total at the bottom (bars cannot be reordered later).
  const ensureBars = (count: number, digestOf: (i: number) => string): void => {
    if (total !== undefined || count === 0) return;
    for (let i = 0; i < count; i++) bars.set(i, multibar.create(1, 0, blank(labelOf(i, count, digestOf(i)), 'waiting')));
    total = multibar.create(1, 0, blank('total'.padEnd(labelOf(0, count, '01234567').length), 'downloading'));
  };

  const onLayer = (e: LayerProgress): void => {
    ensureBars(e.count, (i) => (i === e.index ? e.digest : ''.padEnd(8, '.')));
    const max = Math.max(1, e.bytesTotal ?? e.bytesDone);
    const finished = e.state === 'done' || e.state === 'cached';
    const bar = bars.get(e.index);
    if (bar === undefined) return;
    bar.setTotal(max);
    bar.update(finished ? max : Math.min(e.bytesDone, max), {
      label: labelOf(e.index, e.count, e.digest),
      bytes: `${humanBytes(e.bytesDone)}/${humanBytes(e.bytesTotal)}`.padEnd(17),
      speed: (e.bytesPerSecond !== undefined && !finished ? `${humanBytes(e.bytesPerSecond)}/s` : '').padEnd(10),
      etaText: finished ? '' : `ETA ${humanDuration(e.etaSeconds)}`,
      state: state(e.state),
    } satisfies BarPayload);
  };

  const listener: ProgressListener = (e: ProgressEvent) => {
    if (stopped) return;
    if (e.type === 'warning') return multibar.log(`warning: ${escapeTerminal(e.message)}\n`);
    if (e.type === 'retry' || e.type === 'stall') return multibar.log(`${noticeLine(e)}\n`);
    if (e.type === 'layer') return onLayer(e);
    if (total === undefined) return; // still resolving: layers not known yet
    const max = Math.max(1, e.bytesTotal ?? e.bytesDone);
    total.setTotal(max);
    total.update(e.state === 'done' ? max : Math.min(e.bytesDone, max), {
      bytes: `${humanBytes(e.bytesDone)}/${humanBytes(e.bytesTotal)}`.padEnd(17),
      speed: `${e.layersDone}/${e.layerCount} layers`.padEnd(10),
      state: state(e.state),
    });
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
