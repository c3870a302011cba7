// Per-layer progress of the pulls running now, keyed as pulls are shared (the formatted
// reference): the image manager reports bytes and finished layers, watchers (berth.v1
// ImagePullProgress) are told on each change. In memory only; nothing of it outlives a pull.

export interface LayerState {
  digest: string;
  size: number;
  fetched: number;
  done: boolean;
}

type Listener = (layers: LayerState[] | undefined) => void;

interface Pull {
  layers: LayerState[];
}

export class PullProgress {
  readonly #pulls = new Map<string, Pull>();
  readonly #listeners = new Map<string, Set<Listener>>();

  /** A pull's layers are known (those already on the node are done). */
  start(key: string, layers: LayerState[]): void {
    this.#pulls.set(key, { layers });
    this.#notify(key);
  }

  /** Bytes of a layer received. */
  received(key: string, digest: string, bytes: number): void {
    const layer = this.#pulls.get(key)?.layers.find((l) => l.digest === digest);
    if (!layer) return;
    layer.fetched = Math.min(layer.size, layer.fetched + bytes);
    this.#notify(key);
  }

  /** A layer is downloaded and unpacked. */
  finished(key: string, digest: string): void {
    for (const layer of this.#pulls.get(key)?.layers ?? []) {
      if (layer.digest === digest) {
        layer.fetched = layer.size;
        layer.done = true;
      }
    }
    this.#notify(key);
  }

  /** The pull ended (either way): watchers are told with undefined. */
  end(key: string): void {
    if (!this.#pulls.delete(key)) return;
    for (const listener of this.#listeners.get(key) ?? []) listener(undefined);
  }

  /** Calls `listener` with a copy of the layers now (if the pull runs) and at each change; returns the unsubscribe. */
  watch(key: string, listener: Listener): () => void {
    let set = this.#listeners.get(key);
    if (!set) this.#listeners.set(key, (set = new Set()));
    set.add(listener);
    const pull = this.#pulls.get(key);
    if (pull) listener(pull.layers.map((l) => ({ ...l })));
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(key);
    };
  }

  #notify(key: string): void {
    const pull = this.#pulls.get(key);
    if (!pull) return;
    for (const listener of this.#listeners.get(key) ?? []) listener(pull.layers.map((l) => ({ ...l })));
  }
}
