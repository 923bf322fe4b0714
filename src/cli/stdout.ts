/**
 * Writing bytes to stdout without ever destroying it: a failed source must end the command with its
 * own error (reported by main), not turn into an 'error' event on process.stdout.
 */
import { Writable } from 'node:stream';

/** Writes `buf` to stdout, resolving once stdout can take more (backpressure). */
export function writeStdout(buf: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(buf)) resolve();
    else process.stdout.once('drain', resolve); // EPIPE and other stdout errors are main's to handle
  });
}

/**
 * A Writable forwarding to stdout; destroying it (a failed pipeline) leaves stdout alone. It calls
 * back for a chunk once stdout has written it, not when stdout merely queued it: the tar export
 * reuses a chunk's memory as soon as its write is called back.
 */
export function stdoutSink(): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, callback) {
      process.stdout.write(chunk, () => callback()); // EPIPE and other stdout errors are main's to handle
    },
  });
}
