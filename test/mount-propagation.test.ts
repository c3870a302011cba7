// CRI mount propagation, as cri-tools' critest checks it ("Container Mount Propagation"
// in pkg/validate/container_linux.go): a host dir bound onto itself and made rshared (or
// rprivate) is mounted into a privileged container at the same path; then a mount made
// on the host under it must (or must not) appear inside, and a mount made inside must
// (or must not) appear on the host. And containerd's refusals: a bidirectional mount
// needs a shared source mount, a host-to-container one a shared or slave source mount.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { MountPropagation } from '../src/gen/runtime/v1/api_pb.js';
import { containerTestSkip as skip, setupContainerTest, type Runtime } from './helpers/containers.js';
import { tempDir } from './helpers/tmp.js';
import { run } from './helpers/processes.js';

async function mustRun(command: string, args: string[]): Promise<void> {
  const result = await run(command, args);
  assert.equal(result.code, 0, `${command} ${args.join(' ')}: ${result.stderr}`);
}

async function execOk(runtime: Runtime, containerId: string, cmd: string[]): Promise<string> {
  const result = await runtime.execSync({ containerId, cmd, timeout: 30n });
  assert.equal(result.exitCode, 0, `${cmd.join(' ')}: ${Buffer.from(result.stderr).toString()}`);
  return Buffer.from(result.stdout).toString();
}

/** critest's host side: <dir>/mnt bound onto itself with the given propagation, and a source dir holding a flag file. */
async function propagationHostPath(t: { after(fn: () => unknown): void }, propagation: 'rshared' | 'rprivate') {
  const hostPath = await tempDir(t, 'propagation-');
  const mntSource = join(hostPath, 'mnt');
  const propagationMnt = join(mntSource, 'propagationMnt');
  const srcDir = join(hostPath, 'propagationSrcDir');
  await mkdir(propagationMnt, { recursive: true, mode: 0o700 });
  await mkdir(srcDir, { recursive: true, mode: 0o700 });
  await writeFile(join(srcDir, 'flagFile'), '');
  await mustRun('mount', ['--rbind', mntSource, mntSource]);
  await mustRun('mount', [`--make-${propagation}`, mntSource]);
  return { mntSource, propagationMnt, srcDir };
}

const cases = [
  { name: 'private', propagation: MountPropagation.PROPAGATION_PRIVATE, host: 'rprivate', intoContainer: false, outToHost: false },
  { name: 'host-to-container', propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER, host: 'rshared', intoContainer: true, outToHost: false },
  { name: 'bidirectional', propagation: MountPropagation.PROPAGATION_BIDIRECTIONAL, host: 'rshared', intoContainer: true, outToHost: true },
] as const;

test('mount propagation: private, host-to-container and bidirectional mounts behave as critest expects', { skip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t);
  for (const c of cases) {
    const { mntSource, propagationMnt, srcDir } = await propagationHostPath(t, c.host);
    const { containerId } = await runtime.createContainer({
      podSandboxId: podId,
      config: {
        metadata: { name: `propagation-${c.name}` },
        image: { image },
        command: ['sh', '-c', 'top'],
        linux: { securityContext: { privileged: true } },
        mounts: [{ hostPath: mntSource, containerPath: mntSource, propagation: c.propagation }],
        logPath: `propagation-${c.name}.log`,
      },
    });
    const status = (await runtime.containerStatus({ containerId, verbose: true })).status!;
    assert.deepEqual(
      status.mounts.map((m) => [m.containerPath, m.hostPath, m.readonly, m.propagation]),
      [[mntSource, mntSource, false, c.propagation]],
    );
    await runtime.startContainer({ containerId });

    // A mount made on the host after the container started.
    await mustRun('mount', ['--rbind', srcDir, propagationMnt]);
    const inside = await execOk(runtime, containerId, ['ls', '-A', propagationMnt]);
    assert.equal(inside.trim() !== '', c.intoContainer, `${c.name}: the host's mount seen inside: ${JSON.stringify(inside)}`);

    // A mount made inside the container.
    const containerMntPoint = join(mntSource, 'containerMntPoint');
    await execOk(runtime, containerId, ['sh', '-c', `mkdir -p ${containerMntPoint}`]);
    await execOk(runtime, containerId, ['sh', '-c', `mount --bind /etc ${containerMntPoint}`]);
    const onHost = await readdir(containerMntPoint);
    assert.equal(onHost.length > 0, c.outToHost, `${c.name}: the container's mount seen on the host: ${JSON.stringify(onHost)}`);

    await runtime.removeContainer({ containerId });
    await mustRun('umount', ['-l', mntSource]);
  }
});

test('a bidirectional mount needs a shared source mount, a host-to-container one a shared or slave one (as containerd checks)', { skip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t);
  const { mntSource } = await propagationHostPath(t, 'rprivate');
  const create = (name: string, propagation: MountPropagation, hostPath = mntSource) =>
    runtime.createContainer({
      podSandboxId: podId,
      config: { metadata: { name }, image: { image }, command: ['true'], mounts: [{ hostPath, containerPath: '/m', propagation }], logPath: `${name}.log` },
    });
  await assert.rejects(create('bidir-private', MountPropagation.PROPAGATION_BIDIRECTIONAL), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(err.details, `path "${mntSource}" is mounted on "${mntSource}" but it is not a shared mount`);
    return true;
  });
  // The check is of the mount the path is on, not only of mount points.
  const below = join(mntSource, 'below');
  await mkdir(below);
  await assert.rejects(create('h2c-private', MountPropagation.PROPAGATION_HOST_TO_CONTAINER, below), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(err.details, `path "${below}" is mounted on "${mntSource}" but it is not a shared or slave mount`);
    return true;
  });
  // A slave mount is enough for host-to-container, not for bidirectional.
  await mustRun('mount', ['--make-rshared', mntSource]);
  const slave = join(mntSource, '..', 'slave');
  await mkdir(slave);
  await mustRun('mount', ['--rbind', mntSource, slave]);
  await mustRun('mount', ['--make-rslave', slave]);
  const h2c = await create('h2c-slave', MountPropagation.PROPAGATION_HOST_TO_CONTAINER, slave);
  await runtime.removeContainer({ containerId: h2c.containerId });
  await assert.rejects(create('bidir-slave', MountPropagation.PROPAGATION_BIDIRECTIONAL, slave), (err: GrpcCallError) => err.code === GrpcStatus.FAILED_PRECONDITION && /not a shared mount/.test(err.details));
  // A failed create leaves its name free again.
  await mustRun('mount', ['--make-rshared', slave]);
  const again = await create('bidir-slave', MountPropagation.PROPAGATION_BIDIRECTIONAL, slave);
  await runtime.removeContainer({ containerId: again.containerId });
});
