// The synchronous file operations of the pod and container start and stop paths: the
// non-durable atomic write (records, pod files, CNI cache) and the removal of bundle and
// pod dirs (small trees synchronously, big ones through fs/promises).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../src/store/atomic-file.js';
import { removeUnmounted } from '../src/linux/mount-table.js';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-syncops-'));
  t.after(() => removeUnmounted([dir]));
  return dir;
}

test('a non-durable atomic write replaces the file whole, with its mode, makes a missing dir and leaves no temp file', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'sub', 'deeper', 'record.json');
  await writeJsonAtomic(file, { a: 1 }, { durable: false });
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { a: 1 });
  assert.equal(statSync(file).mode & 0o777, 0o600);
  await writeFileAtomic(file, 'second\n', 0o644, { durable: false });
  assert.equal(readFileSync(file, 'utf8'), 'second\n');
  assert.equal(statSync(file).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(join(dir, 'sub', 'deeper')), ['record.json']);
});

test('a failed non-durable write throws and leaves neither the temp file nor a changed target', async (t) => {
  const dir = scratch(t);
  const target = join(dir, 'x');
  // The target is a non-empty directory: the rename fails (EISDIR/ENOTEMPTY).
  mkdirSync(join(target, 'inside'), { recursive: true });
  await assert.rejects(writeFileAtomic(target, 'data', 0o600, { durable: false }), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.deepEqual(readdirSync(dir), ['x']);
  assert.ok(statSync(target).isDirectory());
});

test('removeUnmounted removes small and big trees, and a symlink in them without following it', async (t) => {
  const dir = scratch(t);
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'keep'), 'kept');
  const small = join(dir, 'bundle');
  mkdirSync(join(small, 'upper', 'etc'), { recursive: true });
  mkdirSync(join(small, 'work', 'work'), { recursive: true });
  writeFileSync(join(small, 'config.json'), '{}');
  writeFileSync(join(small, 'upper', 'etc', 'hostname'), 'h');
  symlinkSync(outside, join(small, 'link'));
  const big = join(dir, 'big');
  mkdirSync(join(big, 'a', 'b'), { recursive: true });
  for (let i = 0; i < 400; i++) writeFileSync(join(big, 'a', 'b', `f${i}`), '');
  await removeUnmounted([small, big, join(dir, 'missing')]);
  assert.equal(existsSync(small), false);
  assert.equal(existsSync(big), false);
  assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), 'kept', 'the symlink was removed, not followed');
});

test("mountPoints (the fifth field alone) names the same points as the parsed mount table, escapes undone", async (t) => {
  const { mountPoints, mountTable } = await import('../src/linux/mount-table.js');
  const dir = scratch(t);
  // A mount point with a space (mountinfo writes it as \040), made and dropped here.
  const spaced = join(dir, 'with space');
  mkdirSync(spaced);
  const { spawnSync } = await import('node:child_process');
  const mounted = spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', spaced]).status === 0;
  let points: Set<string>;
  let table: string[];
  try {
    points = await mountPoints();
    table = (await mountTable()).map((m) => m.point);
  } finally {
    if (mounted) spawnSync('umount', [spaced]);
  }
  assert.deepEqual([...points].sort(), [...new Set(table)].sort());
  assert.ok(points.has('/'));
  if (mounted) assert.ok(points.has(spaced), 'the escaped mount point');
  else t.diagnostic('mount(8) of a tmpfs failed (not root?): the escape case was not checked');
});
