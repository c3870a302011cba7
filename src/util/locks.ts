// The locks berth's managers use around async work: one critical section at a time, one
// per key, or many shared holders against one exclusive holder.

/** Serialises async critical sections (metadata updates that read, then write). */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  lock<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(work, work);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/** A Mutex per key (one pod's or container's transitions run one at a time). */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  lock<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /**
   * Holds several keys at once for work. Keys are taken in sorted order, so two callers
   * asking for overlapping sets cannot deadlock (neither may hold a key of this mutex
   * already: a key is not re-entrant).
   */
  lockAll<T>(keys: string[], work: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const take = (i: number): Promise<T> => (i === sorted.length ? work() : this.lock(sorted[i]!, () => take(i + 1)));
    return take(0);
  }
}

/**
 * Many shared holders or one exclusive holder (CNI: ADD/CHECK/DEL share, GC is
 * exclusive). A waiting exclusive holder holds back new sharers, so a steady stream of
 * shared work cannot starve it.
 */
export class SharedExclusiveLock {
  #shared = 0;
  #exclusive: Promise<void> | undefined;
  #drained: Array<() => void> = [];

  async shared<T>(work: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    this.#shared++;
    try {
      return await work();
    } finally {
      if (--this.#shared === 0) for (const wake of this.#drained.splice(0)) wake();
    }
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let release!: () => void;
    this.#exclusive = new Promise<void>((resolve) => (release = resolve));
    try {
      while (this.#shared > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
      return await work();
    } finally {
      this.#exclusive = undefined;
      release();
    }
  }
}
