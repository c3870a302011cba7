// Temporary directories that are removed after the test, even when it fails (and
// whatever a test mounted below them is unmounted first).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { cleanup } from './scope.js';
import { mountsBelow, mountTable } from '../../src/linux/mount-table.js';
import { stopPidNamespace } from '../../src/linux/pid-namespace.js';

export async function tempDir(t: { after(fn: () => Promise<void> | void): void }, prefix = 'berth-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup(t).after(async () => {
    await unmountBelow(dir);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Unmounts every mount point at or below dir, deepest first (lazily, so busy ones go too). */
export async function unmountBelow(dir: string): Promise<void> {
  const points = mountsBelow(await mountTable(), dir)
    .map((m) => m.point)
    .sort((a, b) => b.length - a.length);
  // A pod PID namespace's init (berthd's catatonit) would run on after a test whose
  // berthd died with its pods still there: it ends with its pin, as berthd ends it.
  for (const pin of points.filter((p) => p.endsWith('-pid'))) await stopPidNamespace(pin, undefined);
  for (const point of points) spawnSync('umount', ['-l', point]);
}
