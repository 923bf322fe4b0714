/**
 * Child process for the cross-process race tests (not a test file itself).
 * argv: <root> <mode: normal | hang> <log file>. Fetches a 1 MiB blob through a slow opener that logs
 * every open as "<pid> <offset>". In `hang` mode the body stalls forever after 20480 bytes.
 */
import { appendFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { BlobStore } from '../../src/store/index.js';
import { content, sha256 } from './helpers.js';

export const RACE_SIZE = 1024 * 1024;
export const HANG_AFTER = 20_480;

async function* body(data: Buffer, offset: number, hang: boolean): AsyncGenerator<Buffer> {
  for (let pos = offset; pos < data.length; pos += 4096) {
    if (hang && pos >= HANG_AFTER) {
      setInterval(() => undefined, 1000); // keep the process alive until it is killed
      await new Promise(() => undefined);
    }
    yield data.subarray(pos, Math.min(data.length, pos + 4096));
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function main(): Promise<void> {
  const [root, mode, log] = process.argv.slice(2);
  if (!root || !mode || !log) throw new Error('usage: race-worker <root> <normal|hang> <log>');
  const data = content(RACE_SIZE, 'race');
  const store = new BlobStore(root);
  const res = await store.fetchInto(
    { digest: sha256(data), size: RACE_SIZE },
    async (offset) => {
      appendFileSync(log, `${process.pid} ${offset}\n`);
      return { stream: Readable.from(body(data, offset, mode === 'hang')), offset };
    },
    { retry: { baseDelayMs: 1 } },
  );
  process.stdout.write(JSON.stringify(res));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
