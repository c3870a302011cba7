// StartContainer's own release of runc's waiting init (OciRuntime.start reads runc's
// exec fifo itself) with real runc and conmon, an `echo` container (it ends as soon as it
// starts), and strace's syscall delays, so what happens now and then under load happens
// every time:
// - the init's open of the fifo returns when berthd opens its end, but its write of the
//   start byte comes late. berthd must not close its end meanwhile: the write would fail
//   with EPIPE if it came before `runc start` (slow under load too: here a wrapper holds
//   it 1 s) opened its own, and the init would die;
// - berthd is held up between a read of the fifo and its check that the init lives, and
//   meanwhile the init writes its byte, runs and ends (seen in a loop of starts at load
//   4-8: ~1 in 300). Taken for an init that died before its byte, the start was left to
//   `runc start`, which found it stopped.
// Both ended in runc's "cannot start a container that has stopped" (a crictl.test flake).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciRuntime } from '../src/container/oci-runtime.js';
import { tempDir } from './helpers/tmp.js';
import { BUSYBOX } from './helpers/image-builder.js';

const RUNC = '/usr/sbin/runc';
const CONMON = '/usr/bin/conmon';
const STRACE = '/usr/bin/strace';
const missing = [RUNC, CONMON, BUSYBOX, STRACE].filter((p) => !existsSync(p));
const skip = process.getuid?.() !== 0 ? 'needs root' : missing.length ? `needs ${missing.join(', ')} (scripts/setup.sh installs them)` : false;
if (skip) console.log(`# oci-runtime-start: skipped: ${skip}`);

type Context = { after(fn: () => Promise<void> | void): void };

/** A bundle whose process is busybox `echo`. */
function echoBundle(dir: string, id: string): string {
  const bundle = join(dir, 'bundle');
  mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
  copyFileSync(BUSYBOX, join(bundle, 'rootfs', 'bin', 'busybox'));
  chmodSync(join(bundle, 'rootfs', 'bin', 'busybox'), 0o755);
  const made = spawnSync(RUNC, ['spec'], { cwd: bundle });
  assert.equal(made.status, 0, made.stderr?.toString());
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[]; terminal: boolean }; linux: { cgroupsPath?: string } };
  spec.process.args = ['/bin/busybox', 'echo', 'started'];
  spec.process.terminal = false;
  spec.linux.cgroupsPath = `/berth-test-${id}`;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

/** strace attached to every thread of pid (it is stopped at the end of the test). */
async function strace(t: Context, pid: number, args: string[]): Promise<void> {
  const child: ChildProcess = spawn(STRACE, ['-f', '-qq', '-o', '/dev/null', ...args, '-p', String(pid)], { stdio: 'ignore' });
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // SIGINT: strace detaches from what it traces, which runs on.
    child.kill('SIGINT');
    await once(child, 'exit');
  });
  const traced = () => {
    try {
      return readdirSync(`/proc/${pid}/task`).every((tid) => !/^TracerPid:\s+0$/m.test(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')));
    } catch {
      return false;
    }
  };
  for (const until = Date.now() + 10_000; !traced(); await sleep(10)) assert.ok(Date.now() < until, `strace did not attach to ${pid}`);
}

/**
 * An echo container created under conmon with runc (named runc: the start fast path is
 * for it; `runc start` delayed by startDelay seconds), then `slow(init)` and start: the
 * start must succeed and the container run to its end.
 */
async function startSlowed(t: Context, startDelay: number, slow: (init: number) => Promise<void>): Promise<number> {
  const dir = await tempDir(t, 'berth-fifo-');
  const id = `fifo-${process.pid}-${startDelay}`;
  const bundle = echoBundle(dir, id);
  const exitDir = join(dir, 'exits');
  mkdirSync(exitDir);
  const wrapper = join(dir, 'bin', 'runc');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(wrapper, `#!/bin/sh\ncase " $* " in *" start "*) sleep ${startDelay};; esac\nexec ${RUNC} "$@"\n`, { mode: 0o755 });
  const runtime = new OciRuntime({ name: 'runc', path: wrapper, options: [], root: join(dir, 'runc'), conmon: CONMON, cgroupDriver: 'cgroupfs' });
  const logFile = join(dir, 'log');
  const init = await runtime.create({ id, bundle, logFile, exitDir, persistDir: bundle, socketDir: join(dir, 'attach') });
  try {
    await slow(init);
    const before = Date.now();
    await runtime.start(id);
    const took = Date.now() - before;
    for (const until = Date.now() + 20_000; !existsSync(join(exitDir, id)); await sleep(20)) assert.ok(Date.now() < until, 'the container never exited');
    assert.equal(readFileSync(join(exitDir, id), 'utf8').trim(), '0');
    assert.match(readFileSync(logFile, 'utf8'), /stdout F started$/m);
    return took;
  } finally {
    // Before the temp dir goes (runc's state is in it): runc removes the container's cgroups.
    await runtime.delete(id);
  }
}

test('start waits for an init whose start byte comes late', { skip }, async (t) => {
  // The init waits in its open of the exec fifo; each of its write(2)s is held 1.5 s (more
  // than start used to wait before it closed its end and ran `runc start`).
  const took = await startSlowed(t, 1, (init) => strace(t, init, ['-e', 'trace=write', '-e', 'inject=write:delay_enter=1500000']));
  assert.ok(took >= 1_000, `start returned after the delayed byte (${took} ms)`);
});

test('an init that writes its byte and ends between a read of the fifo and the liveness check is started', { skip }, async (t) => {
  await startSlowed(t, 0, async (init) => {
    // berthd's open of the init's /proc/PID/stat (the liveness check) is held 0.5 s, and
    // the init's byte 0.1 s (so it comes after berthd's first read): the init has written,
    // run echo and ended by the time the check is done.
    await strace(t, init, ['-e', 'trace=write', '-e', 'inject=write:delay_enter=100000']);
    await strace(t, process.pid, ['-e', 'trace=openat', '-P', `/proc/${init}/stat`, '-e', 'inject=openat:delay_enter=500000']);
  });
});
