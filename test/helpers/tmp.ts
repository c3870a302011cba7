// Temporary directories that are removed after the test, even when it fails (and
// whatever a test mounted below them is unmounted first).
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { cleanup } from './scope.js';

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
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  await killPidNamespaceInits(points.filter((p) => p.endsWith('-pid')));
  for (const point of points) spawnSync('umount', ['-l', point]);
}

/**
 * Kills the inits of pinned pod PID namespaces (berthd's catatonit), which would run
 * on after a test whose berthd died with its pods still there.
 */
async function killPidNamespaceInits(pins: string[]): Promise<void> {
  const inodes = new Set<number>();
  for (const pin of pins) {
    const s = await stat(pin).catch(() => undefined);
    if (s) inodes.add(s.ino);
  }
  if (inodes.size === 0) return;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ns = await stat(`/proc/${entry}/ns/pid`).catch(() => undefined);
    if (ns && inodes.has(ns.ino)) {
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}
