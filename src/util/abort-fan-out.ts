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

  /** A child signal that aborts with the parent until `release` is called (for work that outlives one call, e.g. a body handed on). */
  open(): { signal: AbortSignal; release: () => void } {
    const child = new AbortController();
    if (this.parent.aborted) child.abort(this.parent.reason);
    else this.children.add(child);
    return { signal: child.signal, release: () => void this.children.delete(child) };
  }

  /**
   * Runs `task` with a signal that aborts with the parent; the child is dropped when the task settles.
   * A task that fails aborts its own child with its error: work it started and left running (a layer's
   * download, which carries on into the store after its consumer stops) would otherwise outlive it, since
   * the parent's abort no longer reaches a dropped child (a pull refused by a limit waited ~30 s for the
   * held download's idle timeout).
   */
  async run<T>(task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const child = new AbortController();
    if (this.parent.aborted) child.abort(this.parent.reason);
    else this.children.add(child);
    try {
      return await task(child.signal);
    } catch (err) {
      child.abort(err);
      throw err;
    } finally {
      this.children.delete(child);
    }
  }
}

const shared = new WeakMap<AbortSignal, AbortFanOut>();

/**
 * The one fan-out of `parent` for this process: callers that each make requests under a signal they were
 * handed (the lazy readers of every layer of an image, their read-ahead) share its single listener.
 */
export function fanOutOf(parent: AbortSignal): AbortFanOut {
  let fan = shared.get(parent);
  if (fan === undefined) shared.set(parent, (fan = new AbortFanOut(parent)));
  return fan;
}
