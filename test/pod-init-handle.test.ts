// holdInit (src/linux/pid-namespace.ts): a pod init held open is alive while it runs, not
// once it is a zombie its parent has not reaped, nor once reaped; a process in another
// PID namespace than the pin's is not held. Real processes; no root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { holdInit } from '../src/linux/pid-namespace.js';

const stateOf = (pid: number) => {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3);
};

test('a held init is alive while it runs, dead as an unreaped zombie and once reaped', async (t) => {
  // sh starts a child that ends after a moment, then becomes a sleep that never reaps it.
  const parent = spawn('sh', ['-c', '(sleep 0.5) & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => parent.kill('SIGKILL'));
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  const child = Number(line.toString().trim());
  assert.ok(child > 0);
  // Same PID namespace as this test's: /proc/self/ns/pid stands in for the pod's pin.
  const handle = holdInit(child, '/proc/self/ns/pid');
  assert.ok(handle, 'held');
  t.after(() => handle.close());
  assert.equal(handle.alive(), true);
  const until = Date.now() + 10_000;
  while (stateOf(child) !== 'Z' && Date.now() < until) await sleep(20);
  assert.equal(stateOf(child), 'Z', 'the child is a zombie now');
  assert.doesNotThrow(() => process.kill(child, 0), 'kill 0 takes the zombie for alive');
  assert.equal(handle.alive(), false, 'the handle does not');
  parent.kill('SIGKILL');
  await once(parent, 'exit');
  // Reaped by whoever adopts it; the handle's reads now fail whatever has the pid.
  const reaped = Date.now() + 10_000;
  while (Date.now() < reaped) {
    try {
      stateOf(child);
      await sleep(20);
    } catch {
      break;
    }
  }
  assert.equal(handle.alive(), false);
  handle.close();
  assert.equal(handle.alive(), false, 'a closed handle is not alive');
});

test('a process outside the pinned namespace, or no process, is not held', async (t) => {
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  // A file that is no namespace of it: its own stat file.
  assert.equal(holdInit(sleeper.pid!, `/proc/${sleeper.pid}/stat`), undefined);
  assert.equal(holdInit(2 ** 22 + 1, '/proc/self/ns/pid'), undefined);
  const handle = holdInit(sleeper.pid!, '/proc/self/ns/pid');
  assert.ok(handle, 'held');
  assert.equal(handle.alive(), true);
  handle.close();
});

const unified = (() => {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(' - cgroup2 '))?.split(' ')[4];
  } catch {
    return undefined;
  }
})();

test("alone in its own cgroup v2, a held init's end is reported by cgroup.events: a zombie is seen as soon as it is one", { skip: (process.getuid?.() !== 0 && 'needs root') || (!unified && 'no cgroup v2 hierarchy mounted') }, async (t) => {
  const dir = join(unified!, `berth-test-init-${process.pid}`);
  const shared = join(dir, 'shared');
  const started: ChildProcess[] = [];
  mkdirSync(dir);
  // One clean-up, in order: the processes, then the cgroups (empty by then), innermost first.
  t.after(async () => {
    for (const p of started) p.kill('SIGKILL');
    for (const cgroup of [shared, dir]) {
      for (let i = 0; i < 100; i++) {
        try {
          rmdirSync(cgroup);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          await sleep(20);
        }
      }
    }
  });
  // The child waits for its move into the cgroup, then ends after a moment; its parent becomes a sleep that never reaps it.
  const parent = spawn('sh', ['-c', '(read go; sleep 1) & echo $!; exec sleep 60'], { stdio: ['pipe', 'pipe', 'inherit'] });
  started.push(parent);
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  const child = Number(line.toString().trim());
  writeFileSync(join(dir, 'cgroup.procs'), `${child}\n`);
  const handle = holdInit(child, '/proc/self/ns/pid', unified);
  assert.ok(handle, 'held');
  t.after(() => handle.close());
  assert.equal(handle.watched, true, 'its cgroup is watched');
  assert.equal(handle.alive(), true);
  parent.stdin!.end('go\n');
  const until = Date.now() + 10_000;
  while (handle.alive() && Date.now() < until) await sleep(20);
  assert.equal(handle.alive(), false, 'seen ended (the watch: far sooner than its 10 s re-read)');
  assert.equal(stateOf(child), 'Z', 'while still an unreaped zombie');
  assert.ok(Date.now() < until - 5_000);
  // Not alone in its cgroup: not watched (its end would not change the file).
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  const third = spawn('sleep', ['60'], { stdio: 'ignore' });
  started.push(other, third);
  mkdirSync(shared);
  writeFileSync(join(shared, 'cgroup.procs'), `${other.pid}\n`);
  writeFileSync(join(shared, 'cgroup.procs'), `${third.pid}\n`);
  const notAlone = holdInit(other.pid!, '/proc/self/ns/pid', unified);
  assert.ok(notAlone);
  assert.equal(notAlone.watched, false);
  notAlone.close();
});
