// The warm spawning helper (src/linux/spawn-helper.ts) with real children: output, exit
// codes and signals, exec failures, stdin bigger than a pipe, environment, working dir,
// the fd-3 pipe conmon reports on, a daemon released while it runs, many at once; and
// runCommand / execPlugin through it; its kept PATH lookups, and its own operations
// (mount, umount, pin, rmtree: a forked child with no exec).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runViaHelper, startViaHelper, HelperSpawnError, helperOperationsAvailable } from '../src/linux/spawn-helper.js';
import { runCommand, runHelperOperation } from '../src/linux/command.js';
import { execPlugin } from '../src/network/cni-exec.js';
import { mountFilesystem, mountFlags, unmount } from '../src/linux/mount-calls.js';
import { pinNamespaces, unpinNamespaces } from '../src/linux/namespaces.js';
import { preparePrivateDir } from '../src/linux/mount-table.js';

// Two dirs of the helper's PATH (it takes berthd's environment when it starts) for the
// lookup test: a tool that moves from one to the other is found again.
const scratch = mkdtempSync(join(tmpdir(), 'berth-helper-'));
const [pathA, pathB] = [join(scratch, 'a'), join(scratch, 'b')];
mkdirSync(pathA);
mkdirSync(pathB);
process.env.PATH = `${pathA}:${pathB}:${process.env.PATH ?? '/usr/bin:/bin'}`;
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
const rootSkip = process.getuid?.() === 0 ? false : 'needs root';

function helperRun(...args: Parameters<typeof runViaHelper>) {
  const result = runViaHelper(...args);
  assert.ok(result, 'perl runs here, so the helper does');
  return result;
}

test('a command through the helper: output, exit code, signal, exec failure', async () => {
  assert.deepEqual(await helperRun({ argv: ['sh', '-c', 'echo "out $0"; echo err >&2', 'wörld'] }), { code: 0, signal: null, stdout: 'out wörld\n', stderr: 'err\n' });
  assert.equal((await helperRun({ argv: ['sh', '-c', 'exit 3'] })).code, 3);
  const killed = await helperRun({ argv: ['sh', '-c', 'kill -TERM $$'] });
  assert.deepEqual([killed.code, killed.signal], [null, 'SIGTERM']);
  await assert.rejects(helperRun({ argv: ['/nonexistent-berth-tool'] }), (err: Error) => err instanceof HelperSpawnError && /No such file/.test(err.message));
  await assert.rejects(helperRun({ argv: ['true'], cwd: '/nonexistent-berth-dir' }), (err: Error) => err instanceof HelperSpawnError && /chdir/.test(err.message));
});

test('stdin bigger than a pipe, a given environment, a working dir, and many at once', async () => {
  const input = 'x'.repeat(300_000);
  assert.equal((await helperRun({ argv: ['wc', '-c'], stdin: input })).stdout.trim(), String(input.length));
  const env = await helperRun({ argv: ['sh', '-c', 'echo "$ONLY:${HOME:-none}"; pwd'], env: { ONLY: 'this', PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: '/tmp' });
  assert.equal(env.stdout, 'this:none\n/tmp\n');
  // newSession: the child leads a session (and process group) of its own; without it, the helper's.
  const [session, self] = (await helperRun({ argv: ['sh', '-c', 'cut -d" " -f6 /proc/$$/stat; echo $$'], newSession: true })).stdout.trim().split('\n');
  assert.equal(session, self);
  const [inherited, child] = (await helperRun({ argv: ['sh', '-c', 'cut -d" " -f6 /proc/$$/stat; echo $$'] })).stdout.trim().split('\n');
  assert.notEqual(inherited, child);
  const many = await Promise.all(Array.from({ length: 30 }, (_, i) => helperRun({ argv: ['sh', '-c', `sleep 0.0${i % 5}; echo ${i}`] })));
  assert.deepEqual(many.map((r) => Number(r.stdout)), Array.from({ length: 30 }, (_, i) => i));
});

test('a daemon: its fd-3 message as it comes, its exit while its child keeps the output, then released', async () => {
  let pid = 0;
  let sync = '';
  let exited: number | null | undefined;
  const gotSync = resolvers();
  const gotExit = resolvers();
  // As conmon: a child that stays (holding stdout/stderr and fd 3) and a first process that exits 0.
  const child = startViaHelper({
    argv: ['sh', '-c', '(echo "{\\"data\\": $$}" >&3; exec sleep 30) & exit 0'],
    newSession: true,
    discardStdout: true,
    onPid: (p) => (pid = p),
    onSync: (d) => {
      sync += d.toString();
      gotSync.resolve();
    },
    onExit: (code) => {
      exited = code;
      gotExit.resolve();
    },
  });
  assert.ok(child);
  let settled = false;
  void child.result.then(() => (settled = true), () => (settled = true));
  await Promise.all([gotSync.promise, gotExit.promise]);
  assert.equal(exited, 0);
  assert.ok(pid > 0);
  assert.match(sync, /^\{"data": \d+\}\n$/);
  child.release();
  // The sleeper runs on by itself in the session the helper made for it; it goes now.
  process.kill(-pid, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(settled, false, 'a released child never settles');
  assert.equal(existsSync(`/proc/${pid}`), false);
});

test('children released while their output is readable, and a child started in the same batch: its stdin still comes', async () => {
  // Releasing closes the helper's read ends of a child's pipes; a child started in the same
  // batch of requests gets those fd numbers back. The helper must not take the new pipes
  // for the released ones the select had found readable: a read of the new child's stdout
  // would block the helper before it writes that child's stdin (the child waits for it).
  for (let round = 0; round < 5; round++) {
    const chatty = await Promise.all(
      Array.from({ length: 4 }, async () => {
        let pid = 0;
        const up = resolvers();
        const child = startViaHelper({ argv: ['sh', '-c', 'yes out & exec yes err >&2'], newSession: true, onPid: (p) => ((pid = p), up.resolve()) });
        assert.ok(child);
        void child.result.catch(() => undefined);
        await up.promise;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { child, pid: () => pid };
      }),
    );
    for (const c of chatty) c.child.release();
    const answer = helperRun({ argv: ['sh', '-c', 'cat >/dev/null; echo stdin-closed'], stdin: 'hello' });
    for (const c of chatty) process.kill(-c.pid(), 'SIGKILL');
    const result = await Promise.race([answer, new Promise<undefined>((resolve) => setTimeout(resolve, 5_000, undefined))]);
    assert.ok(result, `round ${round}: the child started beside the releases got no stdin within 5 s (the helper is stuck)`);
    assert.equal(result.stdout, 'stdin-closed\n');
  }
});

test('runCommand and a CNI plugin run through the helper; timeouts kill', async () => {
  assert.equal((await runCommand('cat', [], 'echoing', { input: 'hi' })).stdout, 'hi');
  await assert.rejects(runCommand('sh', ['-c', 'echo nope >&2; exit 1'], 'failing'), /failing: sh failed: nope/);
  await assert.rejects(runCommand('/nonexistent-berth-tool', [], 'starting'), /starting: cannot run \/nonexistent-berth-tool/);
  const started = Date.now();
  await assert.rejects(runCommand('sleep', ['30'], 'sleeping', { timeoutMs: 200 }), /was killed \(SIGKILL\)/);
  assert.ok(Date.now() - started < 5_000);
  const plugin = '/usr/lib/cni/bridge';
  if (!existsSync(plugin)) {
    console.log(`# skipping the CNI plugin part: ${plugin} is not installed`);
    return;
  }
  const version = JSON.parse(await execPlugin({ command: 'VERSION', plugin: 'bridge', path: plugin, env: { CNI_COMMAND: 'VERSION' }, stdin: '{"cniVersion":"1.0.0"}', timeoutMs: 10_000 })) as { supportedVersions: string[] };
  assert.ok(version.supportedVersions.includes('1.0.0'));
});

function resolvers(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => undefined as void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('a tool found in PATH is kept, and looked up again once it moved or went', async () => {
  const tool = (dir: string, said: string) => writeFileSync(join(dir, 'berth-path-probe'), `#!/bin/sh\necho ${said}\n`, { mode: 0o755 });
  tool(pathB, 'b');
  assert.equal((await helperRun({ argv: ['berth-path-probe'] })).stdout, 'b\n');
  tool(pathA, 'a');
  assert.equal((await helperRun({ argv: ['berth-path-probe'] })).stdout, 'b\n', 'the kept path while it is there');
  rmSync(join(pathB, 'berth-path-probe'));
  assert.equal((await helperRun({ argv: ['berth-path-probe'] })).stdout, 'a\n', 'looked up again');
  rmSync(join(pathA, 'berth-path-probe'));
  await assert.rejects(helperRun({ argv: ['berth-path-probe'] }), (err: Error) => err instanceof HelperSpawnError && /No such file/.test(err.message));
});

test('mount(8) option words split into mount(2) flags and data', () => {
  assert.deepEqual(mountFlags('nosuid,nodev,noexec,mode=1777,size=65536k'), { flags: 0xe, data: 'mode=1777,size=65536k' });
  assert.deepEqual(mountFlags('lowerdir=/a:/b,upperdir=/u,workdir=/w,metacopy=on'), { flags: 0, data: 'lowerdir=/a:/b,upperdir=/u,workdir=/w,metacopy=on' });
  assert.deepEqual(mountFlags('ro,bind'), { flags: 0x1001, data: '' });
});

test("the helper's own operations: mount and umount, namespaces pinned with hostname and lo up, a tree removed", { skip: rootSkip }, async (t) => {
  assert.equal(helperOperationsAvailable(), true, `this arch (${process.arch}) has its syscall numbers`);
  const dir = mkdtempSync(join(tmpdir(), 'berth-ops-'));
  const pins = join(dir, 'ns');
  t.after(async () => {
    await runCommand('umount', ['-l', pins], 'x').catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const target = join(dir, 'shm');
  mkdirSync(target);
  await mountFilesystem('tmpfs', 'berthtest', target, 'nosuid,nodev,noexec,mode=700,size=1024k', 'mounting a test tmpfs');
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target);
  assert.match(line ?? '', / rw,nosuid,nodev,noexec[, ].* - tmpfs berthtest rw,size=1024k,mode=700/, line);
  await unmount([target], false, 'unmounting a test tmpfs');
  await assert.rejects(unmount([target], true, 'unmounting it again'), /unmounting it again: umount failed: umount .*shm: Invalid argument/);
  await assert.rejects(mountFilesystem('nosuchfs', 'x', target, '', 'mounting a bad type'), /mounting a bad type: mount failed: mount .*: No such device/);
  await assert.rejects(runHelperOperation(['frobnicate'], 'a bad operation')!, /unknown operation frobnicate/);

  await preparePrivateDir(pins);
  const files = { net: join(pins, 'net'), uts: join(pins, 'uts'), ipc: join(pins, 'ipc') };
  assert.equal(await pinNamespaces(files, 'berth-pinned'), true, 'lo came up with the pins');
  const inside = await runCommand('nsenter', [`--net=${files.net}`, `--uts=${files.uts}`, `--ipc=${files.ipc}`, 'sh', '-c', 'hostname; ip -o link show lo; readlink /proc/self/ns/ipc /proc/self/ns/net; ip -o link | wc -l'], 'looking inside');
  const [name, lo, ipc, net, links] = inside.stdout.trim().split('\n');
  assert.equal(name, 'berth-pinned');
  assert.match(lo!, /<LOOPBACK,UP,LOWER_UP>/);
  assert.notEqual(ipc, readlinkSync('/proc/self/ns/ipc'), 'a new IPC namespace');
  assert.notEqual(net, readlinkSync('/proc/self/ns/net'), 'a new network namespace');
  assert.equal(links, '1', 'a new network namespace: lo alone');
  await unpinNamespaces(Object.values(files));
  assert.deepEqual(Object.values(files).filter((f) => existsSync(f)), []);

  // rmtree follows no symlink and leaves other filesystems alone.
  const tree = join(dir, 'tree');
  const outside = join(dir, 'outside');
  mkdirSync(join(tree, 'a', 'b'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'keep'), 'k');
  writeFileSync(join(tree, 'a', 'b', 'f'), 'x');
  symlinkSync(outside, join(tree, 'a', 'link'));
  await runHelperOperation(['rmtree', tree], 'removing a tree');
  assert.equal(existsSync(tree), false);
  assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), 'k', 'not through the symlink');
  const mounted = join(dir, 'tree2', 'mnt');
  mkdirSync(mounted, { recursive: true });
  await mountFilesystem('tmpfs', 'berthtest', mounted, '', 'mounting a test tmpfs');
  writeFileSync(join(mounted, 'keep'), 'k');
  await assert.rejects(runHelperOperation(['rmtree', join(dir, 'tree2')], 'removing a tree with a mount')!, /some entries were left/);
  assert.equal(readFileSync(join(mounted, 'keep'), 'utf8'), 'k', 'not onto another filesystem');
  await unmount([mounted], false, 'x');
});
