// A trash dir for the trees RemoveContainer and RemovePodSandbox drop (a bundle with its
// writable layer, a pod dir): the tree is renamed into it (atomic, on the same
// filesystem) and the call goes on; the deletion runs in the background, one tree at a
// time, in a child the spawning helper forks (no exec; at low priority), or through
// fs/promises where the helper cannot. Removed synchronously, a tree held berthd's event
// loop tens of ms per container under disk load. What a crash (or a failed deletion)
// leaves in the trash is deleted at the next start-up (emptyTrash).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { runHelperOperation } from './command.js';

/** berthd's trash dir: in its state dir, beside the bundles and pod dirs renamed into it. */
export function trashDirOf(state: string): string {
  return join(state, 'trash');
}

/** Trees renamed into a trash and not deleted yet (their trash paths). */
const pending = new Set<string>();
/** The deletions run one after another: a removed container must not take the disk from the next one's start. */
let queue: Promise<void> = Promise.resolve();

/**
 * Moves dir into the trash dir (made when missing) and has it deleted in the background.
 * True when dir is gone from its place (or was not there); false when it could not be
 * renamed (e.g. it is on another filesystem than the trash): the caller removes it itself.
 */
export function moveToTrash(dir: string, trash: string): boolean {
  const target = join(trash, `${basename(dir)}.${randomBytes(6).toString('hex')}`);
  for (let attempt = 0; ; attempt++) {
    try {
      renameSync(dir, target);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      // Nothing to move, or no trash dir yet (made once, then only when it went missing).
      if (!existsSync(dir)) return true;
      if (attempt > 0) return false;
      mkdirSync(trash, { recursive: true, mode: 0o700 });
    }
  }
  deleteLater(target);
  return true;
}

/** Deletes in the background whatever is in the trash dir (at start-up: what a crash left). */
export function emptyTrash(trash: string): void {
  let entries: string[];
  try {
    entries = readdirSync(trash);
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(trash, entry);
    if (!pending.has(path)) deleteLater(path);
  }
}

/** Resolves once every deletion asked for so far has run (tests; a stopping daemon need not wait). */
export function trashEmptied(): Promise<void> {
  return queue;
}

function deleteLater(path: string): void {
  pending.add(path);
  queue = queue.then(async () => {
    try {
      await (runHelperOperation(['rmtree', path], 'emptying the trash') ?? rm(path, { recursive: true, force: true }));
    } catch {
      // It stays in the trash: the next start-up tries again.
    } finally {
      pending.delete(path);
    }
  });
}
