/**
 * One way every command stops on SIGINT, SIGTERM and SIGHUP: the first signal aborts the command's
 * AbortSignal (downloads, conversions and exports stop and remove their temp files), and the command
 * ends with one coded line `vmimg: ERR_ABORTED: interrupted by SIGTERM` and exit status 128 + the
 * signal's number (130, 143, 129), as a shell reports a process the signal killed. A second signal
 * quits at once, removing the temp files exports registered (src/util/temp-files.ts).
 */
import { constants } from 'node:os';
import { ErrorCode, VmimgError } from '../errors.js';
import { removeTempFilesSync } from '../util/temp-files.js';

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. */
export function exitCodeForSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** The error a command stopped by `signal` ends with (ERR_ABORTED; `details.signal` sets the exit status). */
export function interruptedBy(signal: StopSignal): VmimgError {
  return new VmimgError(ErrorCode.ABORTED, `interrupted by ${signal}`, {
    hint: 'rerun to continue: downloads resume, nothing half-written is kept',
    details: { signal },
  });
}

export interface StopSignals {
  /** The first stop signal received, if any. */
  readonly caught: StopSignal | undefined;
  /** Removes the handlers (the command is over). */
  dispose(): void;
}

/**
 * Installs the handlers. `notice` (a terminal, not --json) says what happens while cleaning up;
 * `quitNow` reports the second signal and exits (it must not return).
 */
export function handleStopSignals(controller: AbortController, notice: boolean, quitNow: (signal: StopSignal) => never): StopSignals {
  let caught: StopSignal | undefined;
  const handlers = STOP_SIGNALS.map((signal) => {
    const handler = (): void => {
      if (caught !== undefined) {
        removeTempFilesSync();
        quitNow(signal);
      }
      caught = signal;
      if (notice) process.stderr.write(`\nvmimg: ${signal === 'SIGINT' ? 'interrupted' : signal}, cleaning up (Ctrl-C again to quit now)\n`);
      controller.abort(interruptedBy(signal));
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return {
    get caught() {
      return caught;
    },
    dispose() {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}
