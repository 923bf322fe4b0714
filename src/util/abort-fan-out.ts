/**
 * One abort listener on a shared signal, however many tasks hang off it. Every task of a pull (a layer's
 * requests, its download, its flattening) used to add its own listeners to the one signal of the pull, so
 * a many-layer image passed Node's limit of 10 and printed `MaxListenersExceededWarning` (attack R13).
 * A fan-out listens once and hands each task a child signal of its own, released when the task ends.
 */
export class AbortFanOut {
  private readonly children = new Set<AbortController>();

  constructor(private readonly parent: AbortSignal) {
    parent.addEventListener('abort', () => {
      for (const child of this.children) child.abort(parent.reason);
      this.children.clear();
    }, { once: true });
  }

  /** Runs `task` with a signal that aborts with the parent; the child is dropped when the task settles. */
  async run<T>(task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const child = new AbortController();
    if (this.parent.aborted) child.abort(this.parent.reason);
    else this.children.add(child);
    try {
      return await task(child.signal);
    } finally {
      this.children.delete(child);
    }
  }
}
