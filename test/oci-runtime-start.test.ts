// StartContainer's own release of runc's waiting init (OciRuntime.start reads runc's
// exec fifo itself) with real runc and conmon, and an init slowed down by strace's
// syscall delay, so what happens under heavy load happens every time: the init's open
// of the fifo returns when berthd opens its end, but its write of the start byte comes
// late. berthd must not close its end meanwhile: the write would fail with EPIPE if it
// came before `runc start` (slow under load too: here a wrapper holds it 1 s) opened
// its own, the init would die, and runc would answer "cannot start a container that has
// stopped".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciRuntime } from '../src/container/oci-runtime.js';
import { tempDir } from './helpers/tmp.js';
import { BUSYBOX } from './helpers/image-builder.js';

const RUNC = '/usr/sbin/runc';
const CONMON = '/usr/bin/conmon';
const missing = [RUNC, CONMON, BUSYBOX, '/usr/bin/strace'].filter((p) => !existsSync(p));
const skip = process.getuid?.() !== 0 ? 'needs root' : missing.length ? `needs ${missing.join(', ')} (scripts/setup.sh installs them)` : false;
if (skip) console.log(`# oci-runtime-start: skipped: ${skip}`);

/** A bundle whose process is busybox `echo`: it ends as soon as it starts. */
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

/** Every thread of pid traced (strace -f has attached to all of them). */
function traced(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).every((tid) => !/^TracerPid:\s+0$/m.test(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')));
  } catch {
    return false;
  }
}

test('start waits for an init whose start byte comes late, and a container that ends at once is started', { skip }, async (t) => {
  const dir = await tempDir(t, 'berth-fifo-');
  const id = `fifo-${process.pid}`;
  const bundle = echoBundle(dir, id);
  const exitDir = join(dir, 'exits');
  mkdirSync(exitDir);
  // runc as berthd runs it (the start fast path is for a binary named runc), with `runc start` 1 s late.
  const wrapper = join(dir, 'bin', 'runc');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(wrapper, `#!/bin/sh\ncase " $* " in *" start "*) sleep 1;; esac\nexec ${RUNC} "$@"\n`, { mode: 0o755 });
  const runtime = new OciRuntime({ name: 'runc', path: wrapper, options: [], root: join(dir, 'runc'), conmon: CONMON, cgroupDriver: 'cgroupfs' });
  const logFile = join(dir, 'log');
  const init = await runtime.create({ id, bundle, logFile, exitDir, persistDir: bundle, socketDir: join(dir, 'attach') });
  try {
    await delayedStart(t, runtime, id, init, exitDir, logFile);
  } finally {
    // Before the temp dir goes (runc's state is in it): runc removes the container's cgroups.
    await runtime.delete(id);
  }
});

async function delayedStart(t: { after(fn: () => void): void }, runtime: OciRuntime, id: string, init: number, exitDir: string, logFile: string): Promise<void> {
  // The init waits in its open of the exec fifo; every write(2) of it is held 1.5 s (more
  // than the second start used to wait before it closed its end and ran `runc start`).
  const strace = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=write', '-e', 'inject=write:delay_enter=1500000', '-p', String(init)], { stdio: 'ignore' });
  t.after(() => {
    strace.kill('SIGKILL');
  });
  for (const until = Date.now() + 10_000; !traced(init); await sleep(10)) assert.ok(Date.now() < until, 'strace did not attach to the init');

  const before = Date.now();
  await runtime.start(id);
  assert.ok(Date.now() - before >= 1_000, 'start returned after the delayed byte');
  for (const until = Date.now() + 20_000; !existsSync(join(exitDir, id)); await sleep(20)) assert.ok(Date.now() < until, 'the container never exited');
  assert.equal(readFileSync(join(exitDir, id), 'utf8').trim(), '0');
  assert.match(readFileSync(logFile, 'utf8'), /stdout F started$/m);
}
