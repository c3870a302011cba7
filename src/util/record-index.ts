// Records found by a key without a scan: a pod's containers, the records carrying a label
// pair. The kubelet lists each pod's sandboxes and containers by its
// io.kubernetes.pod.uid label, so with N pods a scan per listing is N² work a second.
// Kept by the manager that owns the records, beside its map of them; records are kept
// in insertion order under each key, as the manager's map keeps them.

/** Records under string keys, each key's records in the order they were added. */
export class KeyIndex<R> {
  readonly #sets = new Map<string, Set<R>>();

  add(key: string, record: R): void {
    let set = this.#sets.get(key);
    if (!set) this.#sets.set(key, (set = new Set()));
    set.add(record);
  }

  delete(key: string, record: R): void {
    const set = this.#sets.get(key);
    if (!set?.delete(record)) return;
    if (set.size === 0) this.#sets.delete(key);
  }

  /** The records under `key` (none: empty). */
  get(key: string): ReadonlySet<R> {
    return this.#sets.get(key) ?? EMPTY;
  }
}

const EMPTY: ReadonlySet<never> = new Set();

/** Records by each of their labels' key=value pairs (labels are fixed when a record is made). */
export class LabelIndex<R> {
  readonly #pairs = new KeyIndex<R>();

  constructor(private readonly labelsOf: (record: R) => Record<string, string>) {}

  add(record: R): void {
    for (const [key, value] of Object.entries(this.labelsOf(record))) this.#pairs.add(pairKey(key, value), record);
  }

  delete(record: R): void {
    for (const [key, value] of Object.entries(this.labelsOf(record))) this.#pairs.delete(pairKey(key, value), record);
  }

  /**
   * The records that carry the selector's rarest pair, a superset of those that carry all
   * of its pairs (the caller applies the whole selector); undefined for an empty selector.
   */
  candidates(selector: Record<string, string>): ReadonlySet<R> | undefined {
    let best: ReadonlySet<R> | undefined;
    for (const key in selector) {
      const set = this.#pairs.get(pairKey(key, selector[key]!));
      if (!best || set.size < best.size) best = set;
      if (best.size === 0) break;
    }
    return best;
  }
}

// Two pairs could share a key only by a NUL in a label key; the caller's whole selector
// check drops a record that came with the other, so the candidates stay a superset.
const pairKey = (key: string, value: string) => `${key}\0${value}`;
