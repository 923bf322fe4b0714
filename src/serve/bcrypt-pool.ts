/**
 * bcrypt checks off the main thread (breaker5 B4): bcryptjs is pure JS, and on the event loop a flood of
 * wrong logins (each check tens to hundreds of milliseconds by design) delayed every other answer, even
 * remembered logins' (0.5–4.5 s). Each worker (bcrypt-worker.ts) runs one check at a time; the caller
 * bounds how many run and wait (Htpasswd's `maxChecks`/`maxQueue`), so the pool needs no queue of its own.
 * Workers start on first use, are ref'd only while a check runs (an idle pool never keeps a process
 * alive), and a worker that dies fails its check with ERR_INTERNAL and is started again next time.
 */
import type { Worker } from 'node:worker_threads';
import { ErrorCode, VmimgError } from '../errors.js';
import { startWorker } from '../util/worker-thread.js';

interface Slot {
  worker: Worker | undefined;
  /** Checks sent to it and not yet answered, by id. */
  readonly pending: Map<number, { resolve: (ok: boolean) => void; reject: (err: Error) => void }>;
}

/** A fixed number of bcrypt worker threads. */
export class BcryptPool {
  private readonly slots: Slot[];
  private nextId = 1;

  /** `threads`: workers at most (the number of checks the caller runs at once). */
  constructor(threads: number) {
    this.slots = Array.from({ length: Math.max(1, threads) }, () => ({ worker: undefined, pending: new Map() }));
  }

  /** True when `password` matches the bcrypt `hash`; checked on the least busy worker. */
  compare(password: string, hash: string): Promise<boolean> {
    const slot = this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const worker = slot.worker ?? this.start(slot);
    const id = this.nextId++;
    return new Promise<boolean>((resolve, reject) => {
      if (slot.pending.size === 0) worker.ref();
      slot.pending.set(id, { resolve, reject });
      worker.postMessage({ id, password, hash });
    });
  }

  /** Stops the workers; checks still running fail with ERR_ABORTED. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map(async (slot) => {
      const w = slot.worker;
      slot.worker = undefined;
      this.failAll(slot, new VmimgError(ErrorCode.ABORTED, 'the login checks were stopped'));
      await w?.terminate();
    }));
  }

  private start(slot: Slot): Worker {
    const worker = startWorker(import.meta.url, 'bcrypt-worker');
    slot.worker = worker;
    worker.on('message', (m: { id: number; ok: boolean }) => {
      const p = slot.pending.get(m.id);
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      p?.resolve(m.ok);
    });
    const lost = (why: string): void => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      this.failAll(slot, new VmimgError(ErrorCode.INTERNAL, `bcrypt worker ${why}`));
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    worker.unref(); // after the listeners: adding a 'message' listener refs a Worker again
    return worker;
  }

  private failAll(slot: Slot, err: Error): void {
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
  }
}
