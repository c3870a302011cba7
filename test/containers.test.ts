// Containers through berthd: conmon and runc from Debian, a busybox image built by the
// test, logs in the CRI format, exit codes, stop by SIGKILL after the timeout, restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { ContainerState, NamespaceMode, PodSandboxState, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { containerCgroup, monitorCgroup } from '../src/linux/cgroup-names.js';
import { launchBerthd, type TestBerthd } from './helpers/berthd.js';
import { containerTestSkip, setupContainerTest, waitExited } from './helpers/containers.js';
import { cleanup } from './helpers/scope.js';

const skip = containerTestSkip;
const setup = setupContainerTest;

test('a container runs under conmon: CRI log lines, exit codes 0 and 3, env, workdir, user', { skip }, async (t) => {
  const { berthd, runtime, image, podId, logDir } = await setup(t);
  const create = async (name: string, command: string[], extra: object = {}) =>
    (
      await runtime.createContainer({
        podSandboxId: podId,
        config: { metadata: { name }, image: { image }, command, logPath: `${name}.log`, envs: [{ key: 'GREETING', value: new TextEncoder().encode('hi there') }], ...extra },
      })
    ).containerId;

  const talker = await create('talker', ['sh', '-c', 'echo "$GREETING $FROM_IMAGE"; pwd; id -u; echo oops >&2; exit 3']);
  const created = await runtime.containerStatus({ containerId: talker });
  assert.equal(created.status?.state, ContainerState.CONTAINER_CREATED);
  await runtime.startContainer({ containerId: talker });
  const exited = await waitExited(runtime, talker);
  assert.equal(exited.exitCode, 3);
  assert.equal(exited.reason, 'Error');
  assert.ok(exited.finishedAt >= exited.startedAt && exited.startedAt > 0n);
  const log = await readFile(join(logDir, 'talker.log'), 'utf8');
  const lines = log.trim().split('\n');
  for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] /, line);
  assert.deepEqual(lines.map((l) => l.split(' ').slice(1).join(' ')), ['stdout F hi there yes', 'stdout F /tmp', 'stdout F 0', 'stderr F oops']);

  const quiet = await create('quiet', ['true'], { linux: { securityContext: { runAsUser: { value: 1000n } } } });
  await runtime.startContainer({ containerId: quiet });
  const ok = await waitExited(runtime, quiet);
  assert.deepEqual([ok.exitCode, ok.reason], [0, 'Completed']);

  // berthctl reads the same log and lists the same containers.
  const ctlLogs = await berthd.ctl(['logs', talker]);
  assert.equal(ctlLogs.stdout, 'hi there yes\n/tmp\n0\n');
  assert.equal(ctlLogs.stderr, 'oops\n');
  assert.equal((await berthd.ctl(['logs', '--tail', '1', talker])).stderr, 'oops\n');
  assert.equal((await berthd.ctl(['logs', '--limit-bytes', '4', talker])).stdout, 'hi t');
  assert.equal((await berthd.ctl(['logs', '--since', '1h', talker])).stdout, 'hi there yes\n/tmp\n0\n');
  const future = await berthd.ctl(['logs', '--since', new Date(Date.now() + 60_000).toISOString(), talker]);
  assert.deepEqual([future.stdout, future.stderr], ['', '']);
  // --previous reads the attempt before, in the kubelet's <name>/<attempt>.log layout.
  const attempts: string[] = [];
  for (const attempt of [0, 1]) {
    const { containerId } = await runtime.createContainer({
      podSandboxId: podId,
      config: { metadata: { name: 'restarter', attempt }, image: { image }, command: ['echo', `attempt ${attempt}`], logPath: `restarter/${attempt}.log` },
    });
    await runtime.startContainer({ containerId });
    await waitExited(runtime, containerId);
    attempts.push(containerId);
  }
  assert.equal((await berthd.ctl(['logs', attempts[1]!])).stdout, 'attempt 1\n');
  assert.equal((await berthd.ctl(['logs', '--previous', attempts[1]!])).stdout, 'attempt 0\n');
  const none = await berthd.ctl(['logs', '-p', attempts[0]!]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no previous attempt/);
  for (const id of attempts) await runtime.removeContainer({ containerId: id });
  const ps = (await berthd.ctl(['ps', '-a'])).stdout;
  assert.match(ps, new RegExp(`^${talker.slice(0, 13)}\\s+\\S+busybox:1\\s+.+ ago\\s+Exited\\s+talker\\s+0\\s+${podId.slice(0, 13)}\\s+unknown\\s+unknown$`, 'm'));
  assert.equal((await berthd.ctl(['ps', '-q'])).stdout, '', 'no running containers');
  assert.equal((await berthd.ctl(['ps', '--latest', '-q'])).stdout, `${quiet}\n`, 'the most recent, stopped or not');
  assert.equal((await berthd.ctl(['ps', '--last', '2', '-q'])).stdout, `${quiet}\n${talker}\n`);
  const badLast = await berthd.ctl(['ps', '--last', 'two']);
  assert.deepEqual([badLast.code, /needs a whole number, not "two"/.test(badLast.stderr)], [1, true], badLast.stderr);
  const verbose = (await berthd.ctl(['ps', '-a', '-v', '--name', '^talker$'])).stdout;
  assert.match(verbose, new RegExp(`^ID: ${talker}\nPodID: ${podId}\nNamespace: unknown\nName: talker\nAttempt: 0\nState: Exited\nImage: \\S+busybox:1\nCreated: .+ ago\n`));
  const listed = await runtime.listContainers({ filter: { podSandboxId: podId } });
  assert.equal(listed.containers.length, 2);
  await assert.rejects(create('talker', ['true']), { code: GrpcStatus.ALREADY_EXISTS });
  await runtime.removeContainer({ containerId: talker });
  await runtime.removeContainer({ containerId: talker });
  await assert.rejects(runtime.containerStatus({ containerId: talker }), { code: GrpcStatus.NOT_FOUND });
});

test('stop ends a container that ignores SIGTERM with SIGKILL after the timeout; stop and remove twice succeed', { skip }, async (t) => {
  const { runtime, image, podId } = await setup(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'stubborn' }, image: { image }, command: ['sh', '-c', 'trap "" TERM; while true; do sleep 1; done'], logPath: 'stubborn.log' },
  });
  await runtime.startContainer({ containerId });
  await sleep(300);
  const started = Date.now();
  await runtime.stopContainer({ containerId, timeout: 2n }, { timeoutMs: 30_000 });
  const took = Date.now() - started;
  const status = (await runtime.containerStatus({ containerId })).status!;
  assert.equal(status.state, ContainerState.CONTAINER_EXITED);
  assert.equal(status.exitCode, 137, 'killed by SIGKILL');
  assert.ok(took >= 1900 && took < 15_000, `stop took ${took} ms`);
  await runtime.stopContainer({ containerId, timeout: 2n });
  await runtime.removeContainer({ containerId });
  await runtime.removeContainer({ containerId });
});

test('PodSandboxStatus has no timestamp (as containerd): the kubelet with EventedPLEG then asks ContainerStatus for each container', { skip }, async (t) => {
  // With a timestamp the kubelet (EventedPLEG on) takes the pod's container statuses from
  // this answer only; berthd once sent a timestamp and no statuses, and the kubelet saw
  // no containers and created new ones forever.
  const { runtime, image, podId } = await setup(t);
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'runner' }, image: { image }, command: ['sleep', '60'], logPath: 'runner.log' } });
  await runtime.startContainer({ containerId });
  for (const verbose of [false, true]) {
    const answer = await runtime.podSandboxStatus({ podSandboxId: podId, verbose });
    assert.equal(answer.status?.state, PodSandboxState.SANDBOX_READY);
    assert.deepEqual([answer.timestamp, answer.containersStatuses.length], [0n, 0], `verbose ${verbose}`);
  }
});

test('an exit is seen by the exit watch: ContainerStatus and ListContainers show it without any other call, well inside the sweep', { skip }, async (t) => {
  const { runtime, image, podId } = await setup(t);
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'brief' }, image: { image }, command: ['sh', '-c', 'sleep 1; exit 4'], logPath: 'brief.log' } });
  await runtime.startContainer({ containerId });
  // Only the polled calls from here: nothing else reads the exit file.
  const until = Date.now() + 15_000;
  let status = (await runtime.containerStatus({ containerId })).status!;
  assert.equal(status.state, ContainerState.CONTAINER_RUNNING);
  while (status.state !== ContainerState.CONTAINER_EXITED && Date.now() < until) {
    await sleep(20);
    status = (await runtime.containerStatus({ containerId })).status!;
  }
  const seenAt = BigInt(Date.now()) * 1_000_000n;
  assert.deepEqual([status.state, status.exitCode, status.reason], [ContainerState.CONTAINER_EXITED, 4, 'Error']);
  // finishedAt is the exit file's mtime: seen within 2.5 s of it (the sweep runs every 5 s).
  assert.ok(seenAt - status.finishedAt < 2_500_000_000n, `seen ${(seenAt - status.finishedAt) / 1_000_000n} ms after the exit`);
  const listed = (await runtime.listContainers({ filter: { id: containerId } })).containers;
  assert.equal(listed[0]?.state, ContainerState.CONTAINER_EXITED);
});

test('containers keep running while berthd is down; one that exits meanwhile is reported with its code', { skip }, async (t) => {
  const { berthd, runtime, image, podId } = await setup(t);
  const make = async (name: string, command: string[]) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command, logPath: `${name}.log` } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const longRunning = await make('long', ['sleep', '600']);
  const shortLived = await make('short', ['sh', '-c', 'sleep 2; exit 7']);
  await berthd.stop('SIGKILL');
  await sleep(3000);
  const again: TestBerthd = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const channel = openChannel(again.endpoint);
  cleanup(t).after(() => channel.close());
  const after = serviceClient(RuntimeService, channel);
  const running = (await after.containerStatus({ containerId: longRunning })).status!;
  assert.equal(running.state, ContainerState.CONTAINER_RUNNING, 'the long container survived the restart');
  const short = (await after.containerStatus({ containerId: shortLived })).status!;
  assert.deepEqual([short.state, short.exitCode], [ContainerState.CONTAINER_EXITED, 7]);
  await after.stopPodSandbox({ podSandboxId: podId }, { timeoutMs: 60_000 });
  assert.equal((await after.containerStatus({ containerId: longRunning })).status?.state, ContainerState.CONTAINER_EXITED, 'stopping the pod stopped its containers');
  await after.removePodSandbox({ podSandboxId: podId }, { timeoutMs: 60_000 });
  assert.deepEqual((await after.listContainers({})).containers, [], 'removing the pod removed its containers');
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(again.dir));
  assert.deepEqual(mounts.filter((m) => m.includes('rootfs')), [], 'no container rootfs left mounted');
});

test("a service manager killing everything in berthd's cgroup leaves containers, their monitors and pod inits running", { skip }, async (t) => {
  const { berthd, runtime, image, podId } = await setup(t);
  // systemd's default KillMode=control-group, played by hand on the hierarchy it uses.
  const base = existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : existsSync('/sys/fs/cgroup/cgroup.procs') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/pids';
  const service = join(base, `berth-test-service-${process.pid}-${Date.now()}`);
  await mkdir(service);
  cleanup(t).after(() => rmdir(service).catch(() => undefined));
  await writeFile(join(service, 'cgroup.procs'), `${berthd.process.pid}\n`);
  const make = async (name: string, command: string[]) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command, logPath: `${name}.log` } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const long = await make('long', ['sleep', '600']);
  const short = await make('short', ['sh', '-c', 'sleep 2; exit 7']);
  // conmon's own cgroup: in the hierarchies that track or account it (v2, name=systemd,
  // memory…), where conmon is; none of its own in cpuset (a v1 host with both mounted).
  const monitor = monitorCgroup(containerCgroup('', long), long);
  if (existsSync('/sys/fs/cgroup/memory/cgroup.procs') && existsSync('/sys/fs/cgroup/cpuset/cgroup.procs')) {
    assert.notEqual((await readFile(`/sys/fs/cgroup/memory${monitor}/cgroup.procs`, 'utf8')).trim(), '', "conmon is in its memory cgroup");
    assert.ok(!existsSync(`/sys/fs/cgroup/cpuset${monitor}`), "conmon has no cpuset cgroup of its own");
  }
  const members = async () => (await readFile(join(service, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
  assert.deepEqual(await members(), [berthd.process.pid], "only berthd is in its service's cgroup: conmon and the pod's init left it");
  for (const pid of await members()) process.kill(pid, 'SIGKILL');
  await sleep(3000);
  const again: TestBerthd = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const channel = openChannel(again.endpoint);
  cleanup(t).after(() => channel.close());
  const after = serviceClient(RuntimeService, channel);
  assert.equal((await after.containerStatus({ containerId: long })).status?.state, ContainerState.CONTAINER_RUNNING);
  const exited = (await after.containerStatus({ containerId: short })).status!;
  assert.deepEqual([exited.state, exited.exitCode], [ContainerState.CONTAINER_EXITED, 7], 'conmon outlived berthd and wrote the exit');
  assert.equal((await after.podSandboxStatus({ podSandboxId: podId })).status?.state, PodSandboxState.SANDBOX_READY, "the pod's init outlived berthd");
  await after.removeContainer({ containerId: long });
  assert.ok(!existsSync(`/sys/fs/cgroup/memory${monitorCgroup(containerCgroup('', long), long)}`), "conmon's cgroup is removed with its container");
});

/** Runs a container that reports its seccomp mode (0 none, 2 a filter) and whether `mount`, which berth's profile refuses, got through. */
async function seccompProbe(runtime: Awaited<ReturnType<typeof setup>>['runtime'], podId: string, logDir: string, image: string, name: string, securityContext?: object) {
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: {
      metadata: { name },
      image: { image },
      command: ['sh', '-c', 'grep "^Seccomp:" /proc/self/status | tr -s "\\t " " "; mount -t tmpfs none /tmp 2>/dev/null && echo mounted || echo refused'],
      logPath: `${name}.log`,
      // CAP_SYS_ADMIN, so that only seccomp can refuse the mount.
      linux: { securityContext: { capabilities: { addCapabilities: ['SYS_ADMIN'] }, ...securityContext } },
    } as never,
  });
  await runtime.startContainer({ containerId });
  await waitExited(runtime, containerId);
  return (await readFile(join(logDir, `${name}.log`), 'utf8')).split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' '));
}

test('no seccomp profile named runs unconfined, as the CRI says; RuntimeDefault asked for (message or legacy path) is berth\'s profile', { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setup(t);
  const probe = (name: string, securityContext?: object) => seccompProbe(runtime, podId, logDir, image, name, securityContext);
  assert.deepEqual(await probe('unset'), ['Seccomp: 0', 'mounted'], 'no profile named: no filter at all');
  assert.deepEqual(await probe('legacyempty', { seccompProfilePath: '' }), ['Seccomp: 0', 'mounted']);
  assert.deepEqual(await probe('default', { seccomp: { profileType: 0 } }), ['Seccomp: 2', 'refused']);
  assert.deepEqual(await probe('legacydefault', { seccompProfilePath: 'runtime/default' }), ['Seccomp: 2', 'refused']);
  assert.deepEqual(await probe('dockerdefault', { seccompProfilePath: 'docker/default' }), ['Seccomp: 2', 'refused']);
  assert.deepEqual(await probe('unconfined', { seccomp: { profileType: 1 } }), ['Seccomp: 0', 'mounted']);
  // A malformed request is refused before anything is made.
  await assert.rejects(
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'badprofile' }, image: { image }, command: ['true'], linux: { securityContext: { seccompProfilePath: 'bogus' } } } as never }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /seccomp_profile_path "bogus" is not valid/.test(err.details),
  );
  assert.deepEqual((await runtime.listContainers({})).containers.filter((c) => c.metadata?.name === 'badprofile'), []);
});

test('with seccomp_use_default_when_empty, a container that names no profile gets berth\'s RuntimeDefault profile', { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setup(t, 'seccomp_use_default_when_empty = true\n');
  const probe = (name: string, securityContext?: object) => seccompProbe(runtime, podId, logDir, image, name, securityContext);
  assert.deepEqual(await probe('unset'), ['Seccomp: 2', 'refused']);
  assert.deepEqual(await probe('unconfined', { seccompProfilePath: 'unconfined' }), ['Seccomp: 0', 'mounted'], 'what the request names still wins');
});

test('a container killed by its memory limit is reported OOMKilled; others are not', { skip }, async (t) => {
  const { runtime, image, podId } = await setup(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: {
      metadata: { name: 'hog' },
      image: { image },
      command: ['sh', '-c', 'a=$(head -c 300000000 /dev/zero | tr "\\000" x); echo survived'],
      logPath: 'hog.log',
      linux: { resources: { memoryLimitInBytes: 32n * 1024n * 1024n } },
    } as never,
  });
  await runtime.startContainer({ containerId });
  const oomMarkerInCwd = join(process.cwd(), 'oom');
  const markerBefore = existsSync(oomMarkerInCwd);
  const status = await waitExited(runtime, containerId, 60_000);
  assert.deepEqual([status.reason, status.exitCode], ['OOMKilled', 137]);
  // conmon writes an `oom` marker into its working directory: berthd's (here, the
  // test's) must stay clean.
  if (!markerBefore) assert.equal(existsSync(oomMarkerInCwd), false, `conmon left an oom marker in ${process.cwd()}`);
  const calm = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'calm' }, image: { image }, command: ['sh', '-c', 'exit 137'], logPath: 'calm.log', linux: { resources: { memoryLimitInBytes: 32n * 1024n * 1024n } } } as never,
  });
  await runtime.startContainer({ containerId: calm.containerId });
  const calmStatus = await waitExited(runtime, calm.containerId);
  assert.deepEqual([calmStatus.reason, calmStatus.exitCode], ['Error', 137], 'exit 137 alone is not an OOM kill');
});

test('ExecSync returns output and exit code; at its timeout the command and everything it started are killed, promptly', { skip }, async (t) => {
  const { berthd, runtime, image, podId } = await setup(t);
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'target' }, image: { image }, command: ['sleep', '600'], logPath: 'target.log' } });
  await runtime.startContainer({ containerId });
  const result = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 4'], timeout: 10n });
  assert.deepEqual([Buffer.from(result.stdout).toString(), Buffer.from(result.stderr).toString(), result.exitCode], ['out\n', 'err\n', 4]);
  /** What of the exec'd sleeps still runs in the container (busybox ps: PID USER TIME COMMAND). */
  const leftovers = async () => {
    const ps = await runtime.execSync({ containerId, cmd: ['ps'], timeout: 10n });
    return Buffer.from(ps.stdout).toString().split('\n').filter((l) => /sleep [1-9]/.test(l) && !/sleep 600/.test(l));
  };
  const timesOut = async (cmd: string[], timeout: bigint, withinMs: number) => {
    const started = Date.now();
    await assert.rejects(runtime.execSync({ containerId, cmd, timeout }, { timeoutMs: 60_000 }), (err: GrpcCallError) => {
      assert.equal(err.code, GrpcStatus.DEADLINE_EXCEEDED, err.details);
      assert.match(err.details, new RegExp(`timed out after ${timeout}s`));
      return true;
    });
    assert.ok(Date.now() - started < withinMs, `${JSON.stringify(cmd)} took ${Date.now() - started} ms against a ${timeout}s timeout`);
  };

  // critest's "runtime should support execSync with timeout": a 1s timeout, then no sleep left.
  await timesOut(['sleep', '4321'], 1n, 4000);
  assert.deepEqual(await leftovers(), []);
  // A shell's children: the one it waits for, one in the background, one in a session of its own.
  await timesOut(['sh', '-c', 'sleep 31 & setsid sleep 32 & sleep 33; echo never'], 2n, 5000);
  assert.deepEqual(await leftovers(), [], 'nothing the command started survives its timeout');
  // A shell that waits for nothing of its own, with its child holding the output open.
  await timesOut(['sh', '-c', 'sh -c "sleep 34; echo late" & wait'], 1n, 4000);
  assert.deepEqual(await leftovers(), []);

  // A command that ended in time but left a child holding its output: runc returns
  // only once the output is closed, so the call lasts to the deadline, where the child
  // is killed and the command's own exit code and output are the answer.
  const started = Date.now();
  const background = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'sleep 100 & echo launched; exit 3'], timeout: 2n }, { timeoutMs: 60_000 });
  assert.deepEqual([Buffer.from(background.stdout).toString(), background.exitCode], ['launched\n', 3]);
  assert.ok(Date.now() - started < 5000, `a background child held ExecSync for ${Date.now() - started} ms`);
  assert.deepEqual(await leftovers(), []);
  // A child that lets go of the output is the command's to leave running.
  const daemon = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'sleep 101 >/dev/null 2>&1 & echo started'], timeout: 5n }, { timeoutMs: 60_000 });
  assert.deepEqual([Buffer.from(daemon.stdout).toString(), daemon.exitCode], ['started\n', 0]);
  assert.equal((await leftovers()).length, 1, 'a detached child outlives a command that ended in time');

  // A command that cannot start is an error with containerd's code, UNKNOWN, not exit code 255.
  await assert.rejects(runtime.execSync({ containerId, cmd: ['no-such-command'], timeout: 10n }), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.UNKNOWN);
    assert.match(err.details, /"no-such-command": executable file not found in \$PATH/);
    return true;
  });
  const ctl = await berthd.ctl(['exec', '--sync', containerId, 'sh', '-c', 'echo via berthctl; exit 5']);
  assert.deepEqual([ctl.stdout, ctl.code], ['via berthctl\n', 5]);
});

test('runtime handlers: runsc (gVisor) runs the same container with its own kernel; crun on a hybrid host fails with its own message', { skip: skip || (!existsSync('/usr/bin/runsc') && 'runsc is not installed') }, async (t) => {
  // Debian's runsc (2022-12) refuses to set up its network when its sandbox has not
  // joined the pod's netns, so this pod uses the host network and runsc --network=none.
  const { berthd, runtime, image } = await setup(t, '[runtimes.runsc]\npath = "/usr/bin/runsc"\noptions = ["--network=none"]');
  const hostKernel = (await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim();
  const logDir = join(berthd.dir, 'gvisor-logs');
  const pod = await runtime.runPodSandbox({
    config: {
      metadata: { name: 'gvisor', namespace: 'test', uid: 'gvisor-uid', attempt: 0 },
      hostname: 'gv',
      logDirectory: logDir,
      linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } },
    },
    runtimeHandler: 'runsc',
  }, { timeoutMs: 60_000 });
  const { containerId } = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config: { metadata: { name: 'kernel' }, image: { image }, command: ['uname', '-r'], logPath: 'kernel.log' } }, { timeoutMs: 120_000 });
  await runtime.startContainer({ containerId }, { timeoutMs: 60_000 });
  const status = await waitExited(runtime, containerId, 60_000);
  assert.equal(status.exitCode, 0, status.message);
  const kernel = (await readFile(join(logDir, 'kernel.log'), 'utf8')).trim().split(' ').slice(3).join(' ');
  assert.ok(kernel.length > 0 && kernel !== hostKernel, `gVisor reports its own kernel (${kernel}), not the host's (${hostKernel})`);
  await runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }, { timeoutMs: 60_000 });

  if (existsSync('/usr/bin/crun') && existsSync('/sys/fs/cgroup/unified') && existsSync('/sys/fs/cgroup/memory')) {
    const crunPod = await runtime.runPodSandbox({ config: { metadata: { name: 'crun', namespace: 'test', uid: 'crun-uid', attempt: 0 }, logDirectory: logDir }, runtimeHandler: 'crun' });
    const started = Date.now();
    await assert.rejects(
      runtime.createContainer({ podSandboxId: crunPod.podSandboxId, config: { metadata: { name: 'c' }, image: { image }, command: ['true'], logPath: 'c.log' } }, { timeoutMs: 60_000 }),
      (err: GrpcCallError) => {
        // crun's own words, passed through.
        assert.match(err.details, /^crun could not create the container: .*hybrid/, err.details);
        return true;
      },
    );
    assert.ok(Date.now() - started < 30_000, 'a clear error, not a hang');
    await runtime.removePodSandbox({ podSandboxId: crunPod.podSandboxId });
  }
});

test('UpdateContainerResources changes the cgroup; ReopenContainerLog starts a new log file after rotation', { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setup(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'ticker' }, image: { image }, command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done'], logPath: 'ticker.log', linux: { resources: { memoryLimitInBytes: 64n << 20n } } },
  });
  await assert.rejects(runtime.reopenContainerLog({ containerId }), { code: GrpcStatus.FAILED_PRECONDITION });
  await runtime.startContainer({ containerId });
  const limitFile = `/sys/fs/cgroup/memory${containerCgroup('', containerId)}/memory.limit_in_bytes`;
  assert.equal((await readFile(limitFile, 'utf8')).trim(), String(64 << 20));
  await runtime.updateContainerResources({ containerId, linux: { memoryLimitInBytes: 96n << 20n, cpuShares: 512n } });
  assert.equal((await readFile(limitFile, 'utf8')).trim(), String(96 << 20));
  assert.equal((await readFile(`/sys/fs/cgroup/cpu${containerCgroup('', containerId)}/cpu.shares`, 'utf8')).trim(), '512');

  await sleep(500);
  await rename(join(logDir, 'ticker.log'), join(logDir, 'ticker.log.1'));
  await runtime.reopenContainerLog({ containerId });
  await sleep(500);
  const fresh = await readFile(join(logDir, 'ticker.log'), 'utf8');
  assert.match(fresh, /stdout F tick \d+/, 'the reopened log gets new lines');
  const rotated = await readFile(join(logDir, 'ticker.log.1'), 'utf8');
  assert.match(rotated, /tick 0\n/, 'the rotated file kept the old ones');
  await runtime.stopContainer({ containerId, timeout: 0n });
  await assert.rejects(runtime.reopenContainerLog({ containerId }), { code: GrpcStatus.FAILED_PRECONDITION });
});

test('container and pod stats: CPU time and nano-cores, memory, the writable layer', { skip }, async (t) => {
  const { berthd, runtime, image, podId } = await setup(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'busy' }, image: { image }, command: ['sh', '-c', 'head -c 2000000 /dev/zero > /tmp/blob; while true; do :; done'], logPath: 'busy.log' },
  });
  await runtime.startContainer({ containerId });
  await sleep(1000);
  const first = (await runtime.containerStats({ containerId })).stats!;
  await sleep(1000);
  const second = (await runtime.containerStats({ containerId })).stats!;
  assert.equal(second.attributes?.metadata?.name, 'busy');
  assert.ok(second.cpu!.usageCoreNanoSeconds!.value > first.cpu!.usageCoreNanoSeconds!.value, 'CPU time grows');
  // nano-cores is the CPU time's rate since the previous sample (the first call), as
  // cAdvisor computes it: checked against the two samples' own figures, so that a machine
  // busy with other work (where the loop gets far less than a core) cannot fail it.
  const cores = Number(second.cpu!.usageNanoCores!.value) / 1e9;
  const rate = Number(second.cpu!.usageCoreNanoSeconds!.value - first.cpu!.usageCoreNanoSeconds!.value) / Number(second.cpu!.timestamp - first.cpu!.timestamp);
  assert.ok(cores > 0.02 && cores < 2.5, `a busy loop uses CPU, at most the machine's cores (${cores})`);
  assert.ok(Math.abs(cores - rate) <= 0.05 + 0.15 * rate, `nano-cores (${cores}) is the CPU time's rate between the samples (${rate})`);
  assert.ok(second.memory!.workingSetBytes!.value > 0n);
  assert.ok(second.writableLayer!.usedBytes!.value >= 2_000_000n, `the 2 MB file counts in the writable layer (${second.writableLayer!.usedBytes!.value})`);
  const listed = await runtime.listContainerStats({ filter: { podSandboxId: podId } });
  assert.deepEqual(listed.stats.map((s) => s.attributes?.id), [containerId]);
  const pod = (await runtime.podSandboxStats({ podSandboxId: podId })).stats!;
  assert.equal(pod.attributes?.id, podId);
  assert.deepEqual(pod.linux?.containers.map((c) => c.attributes?.id), [containerId]);
  assert.ok(pod.linux!.cpu!.usageCoreNanoSeconds!.value > 0n);
  // The pod's network (the kubelet's summary takes it from here with PodAndContainerStatsFromCRI):
  // eth0's counters as the container sees them in /proc/net/dev.
  const net = pod.linux!.network!;
  assert.ok(net.timestamp > 0n);
  const inside = new TextDecoder().decode((await runtime.execSync({ containerId, cmd: ['cat', '/proc/net/dev'], timeout: 5n })).stdout);
  const eth0 = /^\s*eth0:\s*(\d+)(?:\s+\d+){7}\s+(\d+)/m.exec(inside);
  assert.ok(eth0, inside);
  assert.equal(net.defaultInterface?.name, 'eth0');
  assert.ok(net.defaultInterface!.rxBytes!.value > 0n && net.defaultInterface!.rxBytes!.value <= BigInt(eth0[1]!), `rx ${net.defaultInterface!.rxBytes!.value} vs ${eth0[1]} inside`);
  assert.equal(net.defaultInterface!.txBytes!.value, BigInt(eth0[2]!));
  assert.equal((await runtime.listPodSandboxStats({})).stats.length, 1);
  const table = (await berthd.ctl(['stats'])).stdout;
  assert.match(table, new RegExp(`^${containerId.slice(0, 13)}\\s+busy\\s+\\d+\\.\\d\\d\\s+\\S+B\\s+\\S+B\\s+\\d+\\s+\\S+B$`, 'm'), table);
  assert.match((await berthd.ctl(['statsp'])).stdout, /^ctr-pod\s+/m);
  assert.equal((await berthd.ctl(['update', '--memory', String(80 << 20), containerId])).code, 0);
  assert.equal((await readFile(`/sys/fs/cgroup/memory${containerCgroup('', containerId)}/memory.limit_in_bytes`, 'utf8')).trim(), String(80 << 20));
  await runtime.stopContainer({ containerId, timeout: 0n });
});

test('the kept list answers follow every change at once: create, start, an exit seen only by the exit watch, a pod stopped and removed, a removal', { skip }, async (t) => {
  const { runtime, image, podId } = await setup(t);
  const all = async () => (await runtime.listContainers({})).containers.map((c) => [c.id, c.state]);
  const running = async () => (await runtime.listContainers({ filter: { state: { state: ContainerState.CONTAINER_RUNNING }, labelSelector: {} } })).containers.map((c) => c.id);
  const pods = async () => (await runtime.listPodSandbox({})).items.map((p) => [p.id, p.state]);
  const readyPods = async () => (await runtime.listPodSandbox({ filter: { state: { state: PodSandboxState.SANDBOX_READY }, labelSelector: {} } })).items.map((p) => p.id);
  // Each list asked once before every change, so each change meets a kept answer.
  assert.deepEqual([await all(), await running(), await pods(), await readyPods()], [[], [], [[podId, PodSandboxState.SANDBOX_READY]], [podId]]);
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'kept' }, image: { image }, command: ['sh', '-c', 'sleep 1; exit 4'], logPath: 'kept.log' } });
  assert.deepEqual([await all(), await running()], [[[containerId, ContainerState.CONTAINER_CREATED]], []]);
  await runtime.startContainer({ containerId });
  assert.deepEqual([await all(), await running()], [[[containerId, ContainerState.CONTAINER_RUNNING]], [containerId]]);
  // Only the unfiltered listing from here until the exit shows: the exit watch alone tells.
  const until = Date.now() + 15_000;
  let listed = await all();
  while (listed[0]?.[1] !== ContainerState.CONTAINER_EXITED && Date.now() < until) {
    await sleep(20);
    listed = await all();
  }
  const seenAt = BigInt(Date.now()) * 1_000_000n;
  assert.deepEqual(listed, [[containerId, ContainerState.CONTAINER_EXITED]]);
  assert.deepEqual(await running(), []);
  const status = (await runtime.containerStatus({ containerId })).status!;
  assert.equal(status.exitCode, 4);
  assert.ok(seenAt - status.finishedAt < 2_500_000_000n, `listed as exited ${(seenAt - status.finishedAt) / 1_000_000n} ms after the exit`);
  // A second pod: listed at once, newest first; stopped: not ready at once; removed: gone at once.
  const other = (await runtime.runPodSandbox({ config: { metadata: { name: 'kept-2', namespace: 'test', uid: 'kept-2-uid', attempt: 0 }, hostname: 'kept-2' } })).podSandboxId;
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId: other }).catch(() => undefined));
  assert.deepEqual([await pods(), await readyPods()], [[[other, PodSandboxState.SANDBOX_READY], [podId, PodSandboxState.SANDBOX_READY]], [other, podId]]);
  await runtime.stopPodSandbox({ podSandboxId: other });
  assert.deepEqual([await pods(), await readyPods()], [[[other, PodSandboxState.SANDBOX_NOTREADY], [podId, PodSandboxState.SANDBOX_READY]], [podId]]);
  await runtime.removePodSandbox({ podSandboxId: other });
  assert.deepEqual([await pods(), await readyPods()], [[[podId, PodSandboxState.SANDBOX_READY]], [podId]]);
  await runtime.removeContainer({ containerId });
  assert.deepEqual([await all(), await running()], [[], []]);
});

test("RemoveContainer removes a stopped container's cgroups and runc's state; a process its pod-wide PID namespace kept is killed first", { skip }, async (t) => {
  const { berthd, runtime, image, logDir } = await setup(t);
  const pod = await runtime.runPodSandbox({
    config: { metadata: { name: 'sharedpid', namespace: 'test', uid: 'sharedpid-uid', attempt: 0 }, logDirectory: logDir, linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.POD } } } },
  });
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }, { timeoutMs: 60_000 }).catch(() => undefined));
  const run = async (name: string, script: string) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config: { metadata: { name }, image: { image }, command: ['sh', '-c', script], logPath: `${name}.log` } });
    await runtime.startContainer({ containerId });
    await waitExited(runtime, containerId);
    return containerId;
  };
  const hierarchies = ['memory', 'pids', 'unified'].filter((h) => existsSync(`/sys/fs/cgroup/${h}/cgroup.procs`));
  const left = (id: string) => [...hierarchies.map((h) => `/sys/fs/cgroup/${h}${containerCgroup('', id)}`), join(berthd.dir, 'state', 'runtime', 'runc', id)].filter((p) => existsSync(p));
  // Its init exited and nothing else ran in it.
  const plain = await run('plain', 'exit 0');
  assert.ok(left(plain).length > 1, `its cgroups and runc's state are there while it is: ${left(plain)}`);
  await runtime.removeContainer({ containerId: plain });
  assert.deepEqual(left(plain), []);
  // Its init exited, but a child lives on in the pod's PID namespace (and in its cgroups).
  const parent = await run('parent', 'sleep 600 & echo $! > /dev/null; exit 0');
  const memory = `/sys/fs/cgroup/memory${containerCgroup('', parent)}/cgroup.procs`;
  const orphans = existsSync(memory) ? (await readFile(memory, 'utf8')).split('\n').filter(Boolean).map(Number) : [];
  if (existsSync(memory)) assert.equal(orphans.length, 1, 'the sleep is left in the container cgroup');
  await runtime.removeContainer({ containerId: parent });
  assert.deepEqual(left(parent), []);
  for (const pid of orphans) assert.equal(existsSync(`/proc/${pid}/cmdline`) && (await readFile(`/proc/${pid}/cmdline`, 'utf8')).startsWith('sleep'), false, 'the orphan was killed');
});
