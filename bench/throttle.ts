/**
 * A TCP relay on loopback whose upstream-to-client direction shares one bandwidth budget across all
 * its connections: a model of a remote registry behind a WAN link, where every upstream byte costs.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BURST_MS = 50;

export interface Throttle {
  readonly url: string;
  stop(): Promise<void>;
}

/** Runs the relay in a child process (so it does not share the event loop of what it measures). */
export async function spawnThrottle(target: string, bytesPerSecond: number): Promise<Throttle> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), target, String(bytesPerSecond)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.once('data', (b: Buffer) => resolve(b.toString().trim()));
    child.once('exit', (code) => reject(new Error(`throttle exited ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Relays to `target` (`host:port`) at most `bytesPerSecond` in total towards the clients. */
export async function startThrottle(target: string, bytesPerSecond: number): Promise<Throttle> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  let nextFree = performance.now(); // when the shared link is free again
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = connect(port, host);
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.pipe(up);
    up.on('data', (chunk: Buffer) => {
      const now = performance.now();
      nextFree = Math.max(nextFree, now) + (chunk.length / bytesPerSecond) * 1000;
      const wait = nextFree - now - BURST_MS; // a burst of BURST_MS worth of bytes goes at once, as on a real link's buffers
      if (wait <= 0) return void client.write(chunk);
      up.pause();
      setTimeout(() => {
        client.write(chunk);
        up.resume();
      }, wait);
    });
    up.on('end', () => setTimeout(() => client.end(), Math.max(0, nextFree - performance.now())));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: p } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${p}`,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const t = await startThrottle(process.argv[2]!, Number(process.argv[3]));
  console.log(t.url);
}
