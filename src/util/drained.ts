/** A writable stream (a `stream.Writable`, an `http.ServerResponse`): what `drained` needs of it. */
export interface WaitableWritable {
  readonly destroyed: boolean;
  readonly closed: boolean;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/**
 * Resolves when `res` emits 'drain' or closes, leaving no listener behind. (Not a race against one
 * long-lived 'close' promise: each race left a reaction on it until the answer ended, a few per MiB sent.)
 */
export function drained(res: WaitableWritable): Promise<void> {
  if (res.destroyed || res.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
