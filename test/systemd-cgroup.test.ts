// cgroup_driver = "systemd" against a real systemd (Debian's, as PID 1 of namespaces
// the test makes: test/helpers/systemd.ts): pods in the kubelet's slices, containers in
// runc's berth-ID.scope, conmon in berth-conmon-ID.scope and the pod's PID namespace
// init in berth-init-POD.scope, all in the pod's slice and all gone with their owners;
// stats read from the scope's cgroup; and berthd refusing the driver where systemd
// is not the service manager.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CgroupDriver, ContainerState, NamespaceMode, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd } from './helpers/berthd.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { startRegistry } from './helpers/registry.js';
import { startSystemd, systemdTestSkip } from './helpers/systemd.js';
import { containerTestSkip } from './helpers/containers.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';
import { run } from './helpers/processes.js';
import { BERTHD } from './helpers/paths.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const skip = systemdTestSkip || containerTestSkip;

test('the systemd cgroup driver puts pods, containers, conmon and pod inits in systemd slices and scopes', { skip, timeout: 120_000 }, async (t) => {
  const systemd = await startSystemd(t);
  const show = async (unit: string, property: string) => (await systemd.run(['systemctl', 'show', '-p', property, '--value', unit])).stdout.trim();

  const registry = await startRegistry(t);
  const image = `${registry.host}/test/busybox:1`;
  await pushImage(registry, 'test/busybox', '1', { layers: [buildLayer(busyboxEntries())], config: { Env: ['PATH=/bin'] } });
  const berthd = await startBerthd(t, { extraToml: 'cgroup_driver = "systemd"', prefix: systemd.prefix() });
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  assert.equal((await berthd.ctl(['pull', image])).code, 0);
  assert.equal((await runtime.runtimeConfig({})).linux?.cgroupDriver, CgroupDriver.SYSTEMD, 'RuntimeConfig answers SYSTEMD');

  const uid = randomBytes(4).toString('hex');
  const slice = `kubepods-besteffort-pod${uid}.slice`;
  const slicePath = `/kubepods.slice/kubepods-besteffort.slice/${slice}`;
  const logDir = await tempDir(t, 'systemd-logs-');
  // The kubelet's shape: a pod slice below its QoS slice, a PID namespace of the pod's own.
  const { podSandboxId: podId } = await runtime.runPodSandbox({
    config: {
      metadata: { name: 'sd-pod', namespace: 'test', uid, attempt: 0 },
      logDirectory: logDir,
      linux: { cgroupParent: slice, securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.POD } } },
    },
  });
  assert.equal(await show(`berth-init-${podId}.scope`, 'ActiveState'), 'active', "the pod's PID namespace init runs in its scope");
  assert.equal(await show(`berth-init-${podId}.scope`, 'Slice'), slice);

  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'sleeper' }, image: { image }, command: ['sh', '-c', 'head -c 4000000 /dev/zero > /dev/shm/x; sleep 600'], logPath: 'sleeper.log' },
    sandboxConfig: { metadata: { name: 'sd-pod', namespace: 'test', uid, attempt: 0 }, linux: { cgroupParent: slice } },
  });
  assert.equal(await show(`berth-conmon-${containerId}.scope`, 'ActiveState'), 'active', 'conmon runs in its own scope');
  assert.equal(await show(`berth-conmon-${containerId}.scope`, 'Slice'), slice);
  await runtime.startContainer({ containerId });
  const scope = `berth-${containerId}.scope`;
  assert.equal(await show(scope, 'ActiveState'), 'active', "runc made the container's scope");
  assert.equal(await show(scope, 'Slice'), slice);
  assert.equal(await show(scope, 'ControlGroup'), `${slicePath}/${scope}`);
  const status = (await runtime.containerStatus({ containerId, verbose: true })).status!;
  assert.equal(status.state, ContainerState.CONTAINER_RUNNING);
  // The container's process, as systemd's cgroup tree lists it.
  const procs = (await systemd.run(['cat', `/sys/fs/cgroup/systemd${slicePath}/${scope}/cgroup.procs`])).stdout.trim();
  assert.ok(procs.length > 0, `the scope holds the container's processes (${procs})`);

  // Stats read the scope's cgroup (the 4 MB in /dev/shm count as the container's memory).
  let memory = 0n;
  for (let i = 0; i < 50 && memory < 4_000_000n; i++) {
    memory = (await runtime.containerStats({ containerId })).stats?.memory?.usageBytes?.value ?? 0n;
    if (memory < 4_000_000n) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(memory >= 4_000_000n, `ContainerStats reads the scope's memory (${memory})`);

  await runtime.stopContainer({ containerId, timeout: 0n });
  await runtime.removeContainer({ containerId });
  for (let i = 0; i < 50 && (await show(`berth-conmon-${containerId}.scope`, 'LoadState')) === 'loaded'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.notEqual(await show(scope, 'ActiveState'), 'active', "the container's scope is gone");
  assert.equal(await show(`berth-conmon-${containerId}.scope`, 'LoadState'), 'not-found', "conmon's scope is gone with it");

  await runtime.stopPodSandbox({ podSandboxId: podId });
  await runtime.removePodSandbox({ podSandboxId: podId });
  for (let i = 0; i < 50 && (await show(`berth-init-${podId}.scope`, 'LoadState')) === 'loaded'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await show(`berth-init-${podId}.scope`, 'LoadState'), 'not-found', "the init's scope is gone with the pod");

  // A cgroupfs path is no slice: refused with the driver named.
  await assert.rejects(
    runtime.runPodSandbox({ config: { metadata: { name: 'bad', namespace: 'test', uid: `${uid}-bad`, attempt: 0 }, linux: { cgroupParent: '/kubepods/pod1' } } }),
    /must be a systemd slice name \(NAME\.slice\) with the systemd driver/,
  );
});

test('berthd refuses cgroup_driver = "systemd" where systemd is not the service manager', { skip: containerTestSkip }, async (t) => {
  const dir = await tempDir(t, 'sd-refuse-');
  const config = join(dir, 'berth.toml');
  await writeFile(config, [`listen = "unix://${join(dir, 'b.sock')}"`, `root = "${join(dir, 'root')}"`, `state = "${join(dir, 'state')}"`, 'cgroup_driver = "systemd"'].join('\n'));
  // This machine's PID 1 is not systemd (when it is, the refusal is the test systemd's job: run it in a mount namespace without /run/systemd).
  const result = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs tmpfs /run && exec ${BERTHD} --config ${config}`], { timeoutMs: 30_000 });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /cgroup_driver = \\"systemd\\" needs systemd as this machine's service manager|cgroup_driver = "systemd" needs systemd as this machine's service manager/);
  assert.match(result.stderr, /\/run\/systemd\/private does not exist/);
});
