// A typed in-process publish/subscribe hub. Publishing never blocks and never grows
// without bound: each subscriber has a queue of fixed capacity, and a subscriber that
// falls that far behind is dropped (its stream ends with the reason) rather than
// making berthd hold ever more events for it. Events published before the hub is
// opened (start-up recovery, when nobody can have subscribed yet) are kept, bounded,
// and replayed to every subscriber that arrives within a while after opening.

export interface EventSink<T> {
  publish(event: T): void;
}

export interface HubOptions {
  /** Events one subscriber may have waiting before it is dropped. */
  capacity?: number;
  /** How long after open() the events published before it are replayed to new subscribers. */
  replayMs?: number;
  /** At most this many events are kept for replay (the oldest go first); at most the capacity. */
  replayLimit?: number;
  /** Told when a subscriber is dropped for falling behind. */
  onDrop?: (subscriber: number, capacity: number) => void;
}

/** Why a subscription ended. */
export type EndReason = { kind: 'closed' } | { kind: 'overflow'; capacity: number } | { kind: 'hub-closed' };

export class Subscription<T> implements AsyncIterable<T> {
  readonly #queue: T[] = [];
  #wake: (() => void) | undefined;
  #ended: EndReason | undefined;

  constructor(
    readonly id: number,
    private readonly capacity: number,
    private readonly detach: (s: Subscription<T>) => void,
  ) {}

  /** Why it ended; undefined while it is live or still has events to hand out. */
  get endReason(): EndReason | undefined {
    return this.#queue.length === 0 ? this.#ended : undefined;
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** @internal the hub hands an event over; false when the subscriber overflowed. */
  deliver(event: T): boolean {
    if (this.#ended) return true;
    if (this.#queue.length >= this.capacity) {
      // Nothing half-delivered: what is queued is dropped with it, the client relists.
      this.#queue.length = 0;
      this.#end({ kind: 'overflow', capacity: this.capacity });
      return false;
    }
    this.#queue.push(event);
    this.#wakeUp();
    return true;
  }

  /** @internal */
  end(reason: EndReason): void {
    this.#end(reason);
  }

  /** Stops the subscription (the client went away). Idempotent. */
  close(): void {
    this.#queue.length = 0;
    this.#end({ kind: 'closed' });
  }

  #end(reason: EndReason): void {
    if (this.#ended) return;
    this.#ended = reason;
    this.detach(this);
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next event, or undefined once the subscription has ended. */
  async next(signal?: AbortSignal): Promise<T | undefined> {
    for (;;) {
      if (this.#queue.length > 0) return this.#queue.shift();
      if (this.#ended || signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
      });
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (let event = await this.next(); event !== undefined; event = await this.next()) yield event;
  }
}

export class EventHub<T> implements EventSink<T> {
  readonly #subscribers = new Set<Subscription<T>>();
  readonly #listeners = new Set<(event: T) => void>();
  readonly #capacity: number;
  readonly #replayMs: number;
  readonly #replayLimit: number;
  #replay: T[] = [];
  #opened = false;
  #closed = false;
  #replayTimer: NodeJS.Timeout | undefined;
  #nextId = 1;

  constructor(private readonly options: HubOptions = {}) {
    this.#capacity = options.capacity ?? 1024;
    this.#replayMs = options.replayMs ?? 5 * 60_000;
    // A replay never fills a new subscriber's queue to the brim: live events follow it.
    this.#replayLimit = Math.min(options.replayLimit ?? Math.ceil(this.#capacity / 2), this.#capacity);
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  publish(event: T): void {
    if (this.#closed) return;
    for (const listener of this.#listeners) listener(event);
    if (!this.#opened) {
      this.#replay.push(event);
      if (this.#replay.length > this.#replayLimit) this.#replay.shift();
      return;
    }
    for (const subscriber of [...this.#subscribers]) {
      if (!subscriber.deliver(event)) this.options.onDrop?.(subscriber.id, this.#capacity);
    }
  }

  /** In-process listeners (called synchronously on publish); returns the unsubscribe. */
  listen(listener: (event: T) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Live delivery starts; what was published before is replayed to new subscribers for a while. */
  open(): void {
    if (this.#opened) return;
    this.#opened = true;
    if (this.#replay.length === 0) return;
    this.#replayTimer = setTimeout(() => (this.#replay = []), this.#replayMs);
    this.#replayTimer.unref();
  }

  subscribe(): Subscription<T> {
    const subscription = new Subscription<T>(this.#nextId++, this.#capacity, (s) => this.#subscribers.delete(s));
    if (this.#closed) {
      subscription.end({ kind: 'hub-closed' });
      return subscription;
    }
    this.#subscribers.add(subscription);
    for (const event of this.#replay) if (!subscription.deliver(event)) break;
    return subscription;
  }

  /** Ends every subscription (berthd is stopping). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#replayTimer);
    this.#replay = [];
    for (const subscriber of [...this.#subscribers]) subscriber.end({ kind: 'hub-closed' });
  }
}
