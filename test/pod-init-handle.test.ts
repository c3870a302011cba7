// holdInit (src/linux/pid-namespace.ts): a pod init held open is alive while it runs, not
// once it is a zombie its parent has not reaped, nor once reaped; a process in another
// PID namespace than the pin's is not held. Real processes; no root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
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
