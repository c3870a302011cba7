// Cleanups that run last-registered first, so a daemon stops (and removes its pods)
// before the directories and networks it was started on are removed. node:test runs a
// test's after() hooks in the order they were registered, which is the wrong way round
// for resources built on each other: every helper and test registers through cleanup(t).

export interface HasAfter {
  after(fn: () => unknown): void;
}

export class Scope implements HasAfter {
  readonly #cleanups: Array<() => unknown> = [];

  after(fn: () => unknown): void {
    this.#cleanups.push(fn);
  }

  /** Runs cleanups last-registered first. */
  async close(): Promise<void> {
    for (const fn of this.#cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup failed: ${(err as Error).message}\n`);
      }
    }
    this.#cleanups.length = 0;
  }
}

const scopes = new WeakMap<HasAfter, Scope>();

/** The last-in-first-out cleanup scope of a test (made, and hooked to it, on first use). */
export function cleanup(t: HasAfter): Scope {
  if (t instanceof Scope) return t;
  let scope = scopes.get(t);
  if (!scope) {
    scope = new Scope();
    scopes.set(t, scope);
    const made = scope;
    t.after(() => made.close());
  }
  return scope;
}
