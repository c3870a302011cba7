// Gives back the memory a run of calls left behind, once the calls have paused.
//
// Measured (a heap snapshot diff and V8's space statistics of berthd before and after
// 1,500 status and list calls): what stays is not live data (+0.7 MB: compiled code and
// its feedback) but old-space garbage spread over pages V8 keeps (old space 9.5 → 12.7
// MB, 12.3 MB "used" until a full GC), and a young generation grown to its cap. A plain
// full GC frees the objects but keeps the pages (62.6 MB resident after six, against 65);
// only a compacting one, as V8's memory reducer runs, gives them back (60.3). The memory
// reducer itself starts only after a mark-compact that grew the heap, and berthd's
// garbage is young, so after a burst it often never comes (the bimodal "after calls"
// figures). So berthd runs that compacting GC itself: after calls, when none came for
// `quietMs` (1 s) and the heap has grown by `growthBytes` (512 KB) since the last one, at
// most once per `minIntervalMs` (30 s; start-up's own collections do not count), and once more if calls are still quiet
// `settleMs` (6 s) later (see check()). Each costs 60-130 ms of CPU on this machine's
// loaded cores (two GCs, see below): at most ~1% of one core (two per 30 s), and only
// while the heap keeps growing between pauses. (It was 2 MB while 1,500 calls grew the
// heap ~4.5 MB; with the lists' kept answers and the leaner call path they grow it by
// less than 2 MB, and the burst's 3-4 MB of resident memory then stayed: 512 KB, as
// measured by bench/idle-memory.ts, gives it back.) With
// 10 s instead of 30, bench:polled's per-kind CPU figures (300 calls of a kind, then a
// pause while the other runtimes take their turn) took up to +300 µs a call from it.
//
// It needs V8's gc extension under the name berthd's #! line gives it
// (--expose-gc-as=berthGc); started otherwise (plain `node berthd.js`) it does nothing.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export interface IdleMemoryOptions {
  quietMs?: number;
  /** Still quiet this long after a collection: one more (see check()). */
  settleMs?: number;
  minIntervalMs?: number;
  growthBytes?: number;
  /** The collector; default V8's gc extension as berthd's #! line exposes it. */
  gc?: () => void;
  heapBytes?: () => number;
  now?: () => number;
  /** Told after each collection (berthd logs it at debug level). */
  onRelease?: (stats: { heapBefore: number; heapAfter: number; ms: number }) => void;
}

export interface IdleMemoryStats {
  releases: number;
  lastFreedBytes: number;
}

export const GC_GLOBAL = 'berthGc';

export class IdleMemoryReleaser {
  readonly #quietMs: number;
  readonly #settleMs: number;
  /** A collection ran and no call came since: one more is due once settled. */
  #followUp = false;
  readonly #minIntervalMs: number;
  readonly #growthBytes: number;
  readonly #gc: (() => void) | undefined;
  readonly #heapBytes: () => number;
  readonly #now: () => number;
  #lastCall = 0;
  #lastRelease = -Infinity;
  /** When minIntervalMs counts from: the last collection after start-up's (see check()). */
  #intervalFrom = -Infinity;
  /** Start-up's collection (of start-up's garbage) or its follow-up is still the last one. */
  #startup = true;
  /** The heap's size after the last collection; 0 before the first (start-up's garbage counts as growth). */
  #baseline = 0;
  readonly #onRelease: IdleMemoryOptions['onRelease'];
  #timer: NodeJS.Timeout | undefined;
  readonly stats: IdleMemoryStats = { releases: 0, lastFreedBytes: 0 };

  constructor(options: IdleMemoryOptions = {}) {
    this.#quietMs = options.quietMs ?? 1000;
    this.#minIntervalMs = options.minIntervalMs ?? 30_000;
    this.#settleMs = options.settleMs ?? 6_000;
    this.#growthBytes = options.growthBytes ?? 512 << 10;
    this.#gc = options.gc ?? compactingGc();
    this.#heapBytes = options.heapBytes ?? (() => getHeapStatistics().total_heap_size);
    this.#now = options.now ?? (() => performance.now());
    this.#onRelease = options.onRelease;
  }

  /** Whether a collector is there to run (false when berthd was started without its #! flags). */
  get enabled(): boolean {
    return this.#gc !== undefined;
  }

  /** A call ended (the RPC wrapper's onCall): arms the check, once. */
  noteCall(): void {
    if (!this.#gc) return;
    this.#lastCall = this.#now();
    if (!this.#timer) this.#arm(this.#quietMs);
  }

  /** Runs the check now (what the timer does); true when it collected. */
  check(): boolean {
    this.#timer = undefined;
    const now = this.#now();
    const quietFor = now - this.#lastCall;
    if (quietFor < this.#quietMs) {
      this.#arm(this.#quietMs - quietFor);
      return false;
    }
    const sinceLast = now - this.#lastRelease;
    if (this.#followUp) {
      // A collection 1 s after a burst gives back old-space pages but not the young
      // generation, grown to its cap (2 MB resident against 0.3 fresh): V8 shrinks it in a
      // full GC only when its allocation rate over the last 5 s is low
      // (Heap::ReduceNewSpaceSize), which the burst's still is 1 s later. So, still quiet
      // `settleMs` (past those 5 s) after one, once more, whatever the growth (measured:
      // 59.4 MB after the first, 57.5 after this one).
      if (this.#lastCall > this.#lastRelease) {
        this.#followUp = false;
        this.#startup = false;
      } else if (sinceLast < this.#settleMs) {
        this.#arm(this.#settleMs - sinceLast);
        return false;
      } else {
        this.#followUp = false;
        this.#collect(now);
        this.#startup = false;
        return true;
      }
    }
    // Start-up's collections do not count: a burst in the first 30 s (the kubelet's first
    // listings, the bench's) is given back once it pauses, not up to 30 s later (measured,
    // bench/idle-memory.ts: 60.4 MB for ~17 s after its burst, then 57.6).
    const sinceCounted = now - this.#intervalFrom;
    if (sinceCounted < this.#minIntervalMs) {
      this.#arm(this.#minIntervalMs - sinceCounted);
      return false;
    }
    const before = this.#heapBytes();
    // Not grown: nothing to give back; the next call arms the check again.
    if (before - this.#baseline < this.#growthBytes) return false;
    this.#collect(now);
    this.#followUp = true;
    this.#arm(this.#settleMs);
    return true;
  }

  #collect(now: number): void {
    const before = this.#heapBytes();
    this.#gc!();
    const after = this.#now();
    this.#lastRelease = after;
    if (!this.#startup) this.#intervalFrom = after;
    this.#baseline = this.#heapBytes();
    this.stats.releases++;
    this.stats.lastFreedBytes = Math.max(0, before - this.#baseline);
    this.#onRelease?.({ heapBefore: before, heapAfter: this.#baseline, ms: after - now });
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.check(), Math.max(1, ms));
    this.#timer.unref();
  }
}

/**
 * A full GC that compacts every page it can (what V8's memory reducer asks for), from
 * the gc extension berthd's #! line exposes; undefined without it.
 */
function compactingGc(): (() => void) | undefined {
  const gc = (globalThis as Record<string, unknown>)[GC_GLOBAL];
  if (typeof gc !== 'function') return undefined;
  return () => {
    setFlagsFromString('--compact-on-every-full-gc');
    try {
      // Twice: the pages the first one empties are pooled for reuse and given back by
      // the next (measured: 64.9 MB → 61.4 after one, 60.3 after two, no less after three).
      (gc as () => void)();
      (gc as () => void)();
    } finally {
      setFlagsFromString('--no-compact-on-every-full-gc');
    }
  };
}
