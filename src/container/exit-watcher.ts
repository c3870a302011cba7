// How berthd learns that containers exited: conmon writes each container's exit code to
// <exitDir>/<id> (also while berthd is down). Exits are noticed as conmon writes them,
// not only when a client asks: an inotify watch on the exit dir, and a slow sweep of it
// for anything a watch could miss. readExit turns an exit file into the container's end.
import { readdir, readFile, stat } from 'node:fs/promises';
import { existsSync, readdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';

/** The exit dir is watched; this sweep catches whatever a watch could miss. */
const EXIT_SWEEP_MS = 5_000;
/** An exit file still empty after this long is taken as it is (conmon writes it whole, by rename). */
const EMPTY_EXIT_FILE_GRACE_MS = 2_000;

export interface ExitWatcherOptions {
  exitDir: string;
  /** Called with the name of every exit file that appears or changes (a container id), and for each at every sweep. */
  onExitFile: (id: string) => void;
  log: Logger;
  sweepMs?: number;
}

export class ExitWatcher {
  #watcher: FSWatcher | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #watching = false;

  constructor(private readonly options: ExitWatcherOptions) {}

  /**
   * True while the watch runs: every exit file written since start() has been or is being
   * reported (an inotify queue overflow aside, which the sweep catches). False before
   * start(), after close(), or once the watch failed: readers then look at the files.
   */
  get watching(): boolean {
    return this.#watching;
  }

  start(): void {
    if (this.#watcher || this.#sweep) return;
    const { exitDir, onExitFile, log } = this.options;
    try {
      this.#watcher = watch(exitDir, (_event, name) => {
        if (name) onExitFile(name.toString());
      });
      this.#watcher.on('error', (err) => {
        this.#watching = false;
        log.warn({ error: err.message }, 'the exit dir watch failed; exits are found by the sweep');
      });
      this.#watching = true;
    } catch (err) {
      log.warn({ error: (err as Error).message }, 'cannot watch the exit dir; exits are found by the sweep');
    }
    this.#sweep = setInterval(() => {
      void readdir(exitDir).then((names) => names.forEach(onExitFile), () => undefined);
    }, this.options.sweepMs ?? EXIT_SWEEP_MS);
    this.#sweep.unref();
  }

  /** Stops watching (berthd is stopping). */
  close(): void {
    this.#watching = false;
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }
}

export interface ContainerExit {
  /** The exit code, -1 when the file held none. */
  code: number;
  oomKilled: boolean;
  /** Nanoseconds since the epoch (the exit file's mtime), as a decimal string. */
  finishedAt: string;
}

/**
 * A container's end from its exit file, or undefined while it has none (or one seen
 * between its creation and its first write). oomMarker is conmon's oom file.
 */
export async function readExit(exitFile: string, oomMarker: string, now = Date.now()): Promise<ContainerExit | undefined> {
  // Asked on every status and listing of a container that has not ended: no exit file
  // is the usual answer, told by one stat of the state dir (no thread-pool round trip).
  if (!existsSync(exitFile)) return undefined;
  const text = await readFile(exitFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const finished = await stat(exitFile).then((s) => s.mtimeMs, () => undefined);
  if (finished === undefined) return undefined;
  if (text.trim() === '' && now - finished < EMPTY_EXIT_FILE_GRACE_MS) return undefined;
  const code = Number.parseInt(text.trim(), 10);
  const oomKilled = await stat(oomMarker).then(() => true, () => false);
  return { code: Number.isNaN(code) ? -1 : code, oomKilled, finishedAt: BigInt(Math.round(finished * 1e6)).toString() };
}

export function exitFileOf(exitDir: string, id: string): string {
  return join(exitDir, id);
}

/** The exit files there are (container ids), read at once: one directory read, no thread-pool round trip. */
export function exitFileNames(exitDir: string): string[] {
  try {
    return readdirSync(exitDir);
  } catch {
    return [];
  }
}
