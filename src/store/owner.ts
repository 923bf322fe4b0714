/**
 * Which process owns a lock, lease or temp file in the cache. A process is named by its pid and, where
 * the OS tells it (Linux `/proc/<pid>/stat`), its start time: a pid alone can be reused by an unrelated
 * process after the owner died, and then its files would look owned forever.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface Owner {
  pid: number;
  host: string;
  /** Start time of the process in clock ticks since boot (Linux), when known. */
  start?: string;
}

/** Field 22 of `/proc/<pid>/stat` (start time), or undefined off Linux or when the process is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

let self: Owner | undefined;

/** This process as an owner. */
export function currentOwner(): Owner {
  if (self === undefined) {
    const start = processStartTime(process.pid);
    self = { pid: process.pid, host: hostname(), ...(start !== undefined ? { start } : {}) };
  }
  return self;
}

export function isPidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True while the owner may still be running. An owner on another host (a cache on a shared disk) cannot
 * be checked and counts as alive; on this host the pid must exist and, when both are known, have the
 * same start time.
 */
export function isOwnerAlive(owner: Partial<Owner>): boolean {
  if (typeof owner.pid !== 'number') return false;
  if (owner.host !== undefined && owner.host !== hostname()) return true;
  if (!isPidAlive(owner.pid)) return false;
  if (owner.start === undefined) return true;
  const now = processStartTime(owner.pid);
  return now === undefined || now === owner.start;
}
