// User namespaces (userns_options mode POD, the kubelet's hostUsers: false): the pod's
// own user namespace with the request's mappings owns its network, UTS, IPC and PID
// namespaces; root inside is not root outside (the process's uid on the host is the
// mapped one), the rootfs is the namespace's (owners shifted; writable by its root), a
// file made in a volume shows the mapped owner on the host. Bad requests are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { NamespaceMode, PodSandboxState, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { launchBerthd } from './helpers/berthd.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { cleanup } from './helpers/scope.js';
import { tempDir } from './helpers/tmp.js';

// A range of host ids nobody else on this machine uses (the kubelet's are multiples of 65536).
const BASE = 65536 * (40 + Math.floor(Math.random() * 400));
const mapping = [{ containerId: 0, hostId: BASE, length: 65536 }];

async function hostUid(pid: number): Promise<number> {
  return Number(/^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** The host pids whose process is in the given cgroup-less search: those whose command line is exactly args. */
async function pidsRunning(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

for (const pid of [NamespaceMode.CONTAINER, NamespaceMode.POD]) {
  test(`a pod with its own user namespace (PID mode ${NamespaceMode[pid]}): root inside is not root outside`, { skip: containerTestSkip }, async (t) => {
    const { berthd, runtime, image, logDir } = await setupContainerTest(t);
    const volume = await tempDir(t, 'userns-vol-');
    await chmod(volume, 0o777);
    const namespaceOptions = { pid, usernsOptions: { mode: NamespaceMode.POD, uids: mapping, gids: mapping } };
    const { podSandboxId } = await runtime.runPodSandbox({
      config: { metadata: { name: `userns-${pid}`, namespace: 'test', uid: `userns-uid-${pid}`, attempt: 0 }, hostname: 'userns-host', logDirectory: logDir, linux: { securityContext: { namespaceOptions } } },
    });
    cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId }).catch(() => undefined));
    // runc sets the rootfs up as the namespace's root: a private dir above the state dir is refused, precisely.
    await chmod(berthd.dir, 0o700);
    await assert.rejects(
      runtime.createContainer({ podSandboxId, config: { metadata: { name: 'unreachable' }, image: { image }, linux: { securityContext: { namespaceOptions } } } }),
      (err: GrpcCallError) => err.code === GrpcStatus.FAILED_PRECONDITION && /may not pass .* \(mode 700\)/.test(err.message),
    );
    await chmod(berthd.dir, 0o711);
    const marker = `${BASE + pid}`;
    const { containerId } = await runtime.createContainer({
      podSandboxId,
      config: {
        metadata: { name: 'userns' },
        image: { image },
        command: ['sleep', marker],
        mounts: [{ containerPath: '/vol', hostPath: volume }],
        linux: { securityContext: { namespaceOptions } },
      },
    });
    await runtime.startContainer({ containerId });
    const exec = async (cmd: string[]) => {
      const r = await runtime.execSync({ containerId, cmd, timeout: 10n });
      assert.equal(r.exitCode, 0, `${cmd.join(' ')}: ${Buffer.from(r.stderr).toString()}`);
      return Buffer.from(r.stdout).toString();
    };
    assert.equal((await exec(['id', '-u'])).trim(), '0', 'root inside');
    assert.match(await exec(['cat', '/proc/self/uid_map']), new RegExp(`^\\s*0\\s+${BASE}\\s+65536\\s*$`));
    assert.equal((await exec(['hostname'])).trim(), 'userns-host');
    const [hostPid] = await pidsRunning(marker);
    assert.ok(hostPid, 'the container process is found on the host');
    assert.equal(await hostUid(hostPid!), BASE, 'outside it is the mapped uid, not root');
    // The rootfs is the namespace's: its root may write where the image's root could.
    await exec(['sh', '-c', 'echo written > /etc/userns-test && cat /etc/userns-test']);
    assert.equal((await exec(['stat', '-c', '%u:%g', '/bin/sh'])).trim(), '0:0', 'image files are owned by root inside');
    // A file made in a volume shows the mapped owner on the host.
    await exec(['touch', '/vol/made-inside']);
    const made = await stat(join(volume, 'made-inside'));
    assert.deepEqual([made.uid, made.gid], [BASE, BASE]);
    // Privileges over the host stay out of reach: root inside cannot, e.g., load modules or reach host-owned files.
    const r = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'cat /proc/1/root/etc/shadow 2>&1; mknod /tmp/n c 1 3 2>&1'], timeout: 10n });
    assert.notEqual(r.exitCode, 0, Buffer.from(r.stdout).toString());
    const status = await runtime.podSandboxStatus({ podSandboxId, verbose: true });
    const userns = status.status?.linux?.namespaces?.options?.usernsOptions;
    assert.deepEqual([userns?.mode, userns?.uids.map((m) => [m.containerId, m.hostId, m.length])], [NamespaceMode.POD, [[0, BASE, 65536]]], 'PodSandboxStatus reports the user namespace');
    assert.match(status.info.config ?? status.info.info ?? '', /usernsOptions|userns/i, 'the verbose config shows the user namespace');

    // A berthd restart keeps the pod (its user namespace pin among its pins) and the container.
    await berthd.stop();
    const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
    const channel = openChannel(again.endpoint);
    cleanup(t).after(() => channel.close());
    const runtime2 = serviceClient(RuntimeService, channel);
    assert.equal((await runtime2.podSandboxStatus({ podSandboxId })).status?.state, PodSandboxState.SANDBOX_READY);
    const after = await runtime2.execSync({ containerId, cmd: ['cat', '/proc/self/uid_map'], timeout: 10n });
    assert.match(Buffer.from(after.stdout).toString(), new RegExp(`^\\s*0\\s+${BASE}\\s+65536\\s*$`));
    await runtime2.removePodSandbox({ podSandboxId });
    assert.deepEqual((await readdir(join(berthd.dir, 'state', 'ns')).catch(() => [] as string[])).filter((n) => n.startsWith(podSandboxId)), [], 'no pin of the pod is left');
  });
}

test('user namespace requests berth cannot honour are refused', { skip: containerTestSkip }, async (t) => {
  const { runtime } = await setupContainerTest(t);
  const run = (usernsOptions: object, extra: object = {}) =>
    runtime.runPodSandbox({ config: { metadata: { name: 'userns-bad', namespace: 'test', uid: 'userns-bad', attempt: 0 }, linux: { securityContext: { namespaceOptions: { usernsOptions, ...extra } } } } });
  const invalid = (message: RegExp) => (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && message.test(err.message);
  await assert.rejects(run({ mode: NamespaceMode.CONTAINER }), invalid(/mode CONTAINER is not supported/));
  await assert.rejects(run({ mode: NamespaceMode.TARGET }), invalid(/mode TARGET is not supported/));
  await assert.rejects(run({ mode: NamespaceMode.POD, uids: [...mapping, { containerId: 0, hostId: BASE * 2, length: 10 }], gids: mapping }), invalid(/exactly one uid mapping, got 2/));
  await assert.rejects(run({ mode: NamespaceMode.POD, uids: [{ containerId: 1, hostId: BASE, length: 10 }], gids: mapping }), invalid(/must map container id 0/));
  await assert.rejects(run({ mode: NamespaceMode.POD, uids: mapping, gids: mapping }, { network: NamespaceMode.NODE }), invalid(/own network namespace, not the node's/));
  // NODE is the host's user namespace, as without the option.
  const { podSandboxId } = await run({ mode: NamespaceMode.NODE });
  assert.ok(podSandboxId);
});
