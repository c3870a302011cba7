// Temporary directories that are removed after the test, even when it fails (and
// whatever a test mounted below them is unmounted first).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

export async function tempDir(t: { after(fn: () => Promise<void> | void): void }, prefix = 'berth-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(async () => {
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
  for (const point of points) spawnSync('umount', ['-l', point]);
}
