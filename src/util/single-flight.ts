// Runs one piece of work per key at a time: callers that ask for a key already in
// progress share its promise (two pulls of one image or blob download it once).
export class SingleFlight<T> {
  readonly #running = new Map<string, Promise<T>>();

  isRunning(key: string): boolean {
    return this.#running.has(key);
  }

  run(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key);
    if (running) return running;
    const promise = work().finally(() => this.#running.delete(key));
    this.#running.set(key, promise);
    return promise;
  }
}
