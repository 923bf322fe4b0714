/** Shared helpers for store tests: deterministic content and scriptable range openers. */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { OpenedRange, RangeOpener } from '../../src/store/index.js';

/** Deterministic pseudo-random content of `size` bytes. */
export function content(size: number, seed = 'vmimg'): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let pos = 0; pos < size; pos += block.length) {
    block.copy(out, pos);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function sha256(buf: Buffer): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

export async function tempRoot(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vmimg-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface ScriptedOpener {
  open: RangeOpener;
  /** Offsets asked for, in call order. */
  calls: number[];
}

export interface OpenerScript {
  /** Chunk size in bytes (default 1000). */
  chunk?: number;
  /** For call i (0-based), fail the body after it has served this many bytes (a reset). */
  failAfter?: (number | undefined)[];
  /** For call i, the opener itself throws this error. */
  openError?: (Error | undefined)[];
  /** Serve from 0 and say so, as a server that ignores Range does. */
  ignoreRange?: boolean;
  /** Yield to the event loop between chunks with this many ms (default 0: setImmediate). */
  delayMs?: number;
}

/** An opener serving `data` as a registry would, with scripted failures. */
export function scriptedOpener(data: Buffer, script: OpenerScript = {}): ScriptedOpener {
  const calls: number[] = [];
  const open: RangeOpener = async (offset: number): Promise<OpenedRange> => {
    const call = calls.length;
    calls.push(offset);
    const err = script.openError?.[call];
    if (err) throw err;
    const start = script.ignoreRange ? 0 : offset;
    return { stream: Readable.from(body(data, start, script, script.failAfter?.[call])), offset: start };
  };
  return { open, calls };
}

async function* body(data: Buffer, start: number, script: OpenerScript, failAfter: number | undefined): AsyncGenerator<Buffer> {
  const chunk = script.chunk ?? 1000;
  let served = 0;
  for (let pos = start; pos < data.length; pos += chunk) {
    const piece = data.subarray(pos, Math.min(data.length, pos + chunk));
    if (failAfter !== undefined && served + piece.length > failAfter) {
      if (failAfter > served) yield piece.subarray(0, failAfter - served);
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    }
    served += piece.length;
    yield piece;
    await new Promise((r) => (script.delayMs ? setTimeout(r, script.delayMs) : setImmediate(r)));
  }
}
