// node:http as a plain client in tests: one GET, and its body read to the end (or the error that cut it).
import { get, type IncomingMessage } from 'node:http';

/** GET `url` with `headers`; resolves with the response as soon as its headers arrive. */
export function request(url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, { headers }, resolve).on('error', reject));
}

/** The whole body, or the error that cut it (a server destroying the socket mid-body rejects). */
export function body(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    res.on('data', (b: Buffer) => parts.push(b));
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('aborted')));
    res.resume(); // a caller may have paused it to read only the first bytes
  });
}

/** Resolves once `n` body bytes arrived; the stream is then paused with them put back (the rest stays unread). */
export function firstBytes(res: IncomingMessage, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const parts: Buffer[] = [];
    const onData = (b: Buffer): void => {
      parts.push(b);
      got += b.length;
      if (got >= n) {
        res.off('data', onData);
        res.pause();
        res.unshift(Buffer.concat(parts));
        resolve();
      }
    };
    res.on('data', onData);
    res.on('error', reject);
  });
}
