// Image volumes: a CRI Mount naming an image mounts that image's rootfs read-only into
// the container (whole or at image_sub_path), reported in ContainerStatus with the image
// id PullImage returned; the image stays while a container uses it; the overlay goes
// with the container, and after a crash with recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcStatus, type GrpcStatusCode } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ContainerConfigSchema, ImageService, RuntimeService, type MountSchema } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { checkSubPath, resolveInImage } from '../src/container/image-volumes.js';
import { containerSpecFrom } from '../src/cri/container-translate.js';
import { launchBerthd } from './helpers/berthd.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { buildLayer, pushImage } from './helpers/image-builder.js';
import { cleanup } from './helpers/scope.js';
import { tempDir } from './helpers/tmp.js';

const skip = containerTestSkip;

test('image_sub_path must stay inside the image', () => {
  assert.equal(checkSubPath(''), undefined);
  assert.equal(checkSubPath('etc'), undefined);
  assert.equal(checkSubPath('a/../b'), undefined);
  assert.match(checkSubPath('/etc')!, /relative/);
  assert.match(checkSubPath('../x')!, /leaves the image/);
  assert.match(checkSubPath('a/../../x')!, /leaves the image/);
});

test("a sub path's symlinks are followed inside the image, never above it", async (t) => {
  const root = await tempDir(t, 'imgvol-');
  await mkdir(join(root, 'usr/etc/app'), { recursive: true });
  await writeFile(join(root, 'usr/etc/app/conf'), 'x');
  await symlink('/usr/etc', join(root, 'etc'));
  await symlink('../../../../..', join(root, 'usr/up'));
  await symlink('loop', join(root, 'loop'));
  assert.equal(await resolveInImage(root, 'etc/app', 'img'), join(root, 'usr/etc/app'));
  assert.equal(await resolveInImage(root, 'etc/app/conf', 'img'), join(root, 'usr/etc/app/conf'));
  // Above the image's root is its root, as inside the container.
  assert.equal(await resolveInImage(root, 'usr/up/usr', 'img'), join(root, 'usr'));
  await assert.rejects(resolveInImage(root, 'etc/none', 'img'), /does not exist in image img/);
  await assert.rejects(resolveInImage(root, 'loop', 'img'), /too many symbolic links/);
});

test('image volume mounts are translated: read-only only, the image and sub path kept', () => {
  const config = (mount: MessageInitShape<typeof MountSchema>) => create(ContainerConfigSchema, { metadata: { name: 'c' }, image: { image: 'busybox' }, mounts: [{ containerPath: '/v', ...mount }] });
  assert.throws(() => containerSpecFrom(config({ image: { image: 'data' }, readonly: false })), /must be read-only/);
  assert.throws(() => containerSpecFrom(config({ image: { image: 'data' }, readonly: true, imageSubPath: '/etc' })), /must be relative/);
  assert.throws(() => containerSpecFrom(config({ hostPath: '/tmp', imageSubPath: 'etc' })), /needs an image/);
  const spec = containerSpecFrom(config({ image: { image: 'data' }, readonly: true, imageSubPath: 'etc' }));
  assert.deepEqual(spec.mounts, [{ containerPath: '/v', hostPath: '', readonly: true, propagation: 'private', image: { image: 'data', imageId: '', subPath: 'etc' } }]);
});

async function setup(t: Parameters<typeof setupContainerTest>[0]) {
  const base = await setupContainerTest(t);
  // Two layers: the upper one adds a file, replaces one and deletes one (a whiteout).
  const data = `${base.registry.host}/test/data:1`;
  await pushImage(base.registry, 'test/data', '1', {
    layers: [
      buildLayer([
        { type: 'dir', path: 'etc/' },
        { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/:/bin/sh\n' },
        { type: 'file', path: 'etc/old', content: 'old\n' },
        { type: 'file', path: 'etc/gone', content: 'gone\n' },
        { type: 'symlink', path: 'conf', target: '/etc' },
      ]),
      buildLayer([
        { type: 'dir', path: 'etc/' },
        { type: 'file', path: 'etc/old', content: 'new\n' },
        { type: 'file', path: 'etc/.wh.gone', content: '' },
        { type: 'file', path: 'hello', content: 'from the data image\n' },
      ]),
    ],
  });
  const channel = openChannel(base.berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const images = serviceClient(ImageService, channel);
  const { imageRef } = await images.pullImage({ image: { image: data } });
  return { ...base, images, data, dataRef: imageRef };
}

const code = (expected: GrpcStatusCode) => (err: GrpcCallError) => {
  assert.equal(err.code, expected, err.message);
  return true;
};

test('an image volume is the image read-only, whole or at a sub path; it keeps its image until the container goes', { skip }, async (t) => {
  const { berthd, runtime, images, image, podId, data, dataRef } = await setup(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: {
      metadata: { name: 'vol' },
      image: { image },
      command: ['sleep', '600'],
      mounts: [
        { containerPath: '/mnt/whole', readonly: true, image: { image: data } },
        { containerPath: '/mnt/etc', readonly: true, image: { image: dataRef }, imageSubPath: 'conf' },
      ],
    },
  });
  await runtime.startContainer({ containerId });
  const exec = async (cmd: string[]) => runtime.execSync({ containerId, cmd, timeout: 10n });
  const out = async (cmd: string[]) => {
    const r = await exec(cmd);
    assert.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
    return Buffer.from(r.stdout).toString();
  };
  assert.equal(await out(['cat', '/mnt/whole/hello']), 'from the data image\n');
  assert.equal(await out(['cat', '/mnt/whole/etc/old']), 'new\n', 'the upper layer wins');
  assert.equal((await exec(['ls', '/mnt/whole/etc/gone'])).exitCode === 0, false, 'a whiteout hides the lower file');
  assert.equal((await exec(['ls', '-A', '/mnt/whole/etc'])).stdout.toString().includes('.wh.'), false, 'no whiteout shows');
  // The sub path "conf" is a symlink to /etc: followed inside the image.
  assert.equal(await out(['cat', '/mnt/etc/passwd']), 'root:x:0:0::/:/bin/sh\n');
  assert.notEqual((await exec(['touch', '/mnt/whole/x'])).exitCode, 0, 'read-only');
  assert.notEqual((await exec(['touch', '/mnt/etc/x'])).exitCode, 0, 'read-only at the sub path too');
  assert.match(await out(['sh', '-c', 'grep " /mnt/whole " /proc/self/mountinfo']), /\bro\b/);

  const status = (await runtime.containerStatus({ containerId })).status!;
  const mounts = new Map(status.mounts.map((m) => [m.containerPath, m]));
  assert.equal(mounts.get('/mnt/whole')?.image?.image, data);
  assert.equal(mounts.get('/mnt/whole')?.image?.imageRef, dataRef, 'the image id PullImage returned');
  assert.equal(mounts.get('/mnt/whole')?.readonly, true);
  assert.equal(mounts.get('/mnt/etc')?.imageSubPath, 'conf');
  assert.equal(mounts.get('/mnt/etc')?.image?.imageRef, dataRef);

  // Its layers are the volume: RemoveImage refuses while the container exists.
  await assert.rejects(images.removeImage({ image: { image: data } }), code(GrpcStatus.FAILED_PRECONDITION));
  assert.ok((await images.imageStatus({ image: { image: dataRef } })).image, 'still there');

  const mountsOf = async () => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(berthd.dir) && l.includes(containerId));
  // The container's mount namespace holds the overlay; the host's copy went after create.
  assert.deepEqual((await mountsOf()).filter((l) => l.includes('image-')), [], 'no image overlay left on the host while the container runs');
  await runtime.stopContainer({ containerId, timeout: 0n });
  await runtime.removeContainer({ containerId });
  assert.deepEqual(await mountsOf(), [], 'nothing of the container stays mounted');
  await images.removeImage({ image: { image: data } });
  assert.equal((await images.imageStatus({ image: { image: dataRef } })).image, undefined);
});

test('image volumes are refused for an absent image, a missing sub path and readonly=false; nothing stays mounted', { skip }, async (t) => {
  const { berthd, runtime, image, podId, data } = await setup(t);
  const create = (name: string, mount: Record<string, unknown>) =>
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command: ['sleep', '600'], mounts: [{ containerPath: '/mnt/v', readonly: true, ...mount }] } });
  await assert.rejects(create('absent', { image: { image: 'registry.invalid/none:1' } }), code(GrpcStatus.NOT_FOUND));
  await assert.rejects(create('missing', { image: { image: data }, imageSubPath: 'not-existing' }), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(err.message, /not-existing" does not exist in image/);
    return true;
  });
  await assert.rejects(create('rw', { image: { image: data }, readonly: false }), code(GrpcStatus.INVALID_ARGUMENT));
  assert.deepEqual((await runtime.listContainers({})).containers, []);
  const left = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(berthd.dir) && l.includes('image-'));
  assert.deepEqual(left, []);
});

test("after a crash, an image volume is unmounted with its container, and with a half-made container's bundle", { skip }, async (t) => {
  const { berthd, runtime, podId, image, data } = await setup(t);
  const make = async (name: string) =>
    (await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command: ['sleep', '600'], mounts: [{ containerPath: '/mnt/v', readonly: true, image: { image: data } }] } })).containerId;
  const kept = await make('kept');
  const halfMade = await make('half');
  await berthd.stop('SIGKILL');
  // As if berthd died in CreateContainer before writing the record: only the bundle is left.
  await rm(join(berthd.dir, 'root', 'containers', `${halfMade}.json`));
  const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const channel = openChannel(again.endpoint);
  cleanup(t).after(() => channel.close());
  const after = serviceClient(RuntimeService, channel);
  const mounted = async (id: string) => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(berthd.dir) && l.includes(id));
  assert.deepEqual(await mounted(halfMade), [], 'recovery unmounted what the half-made container had');
  assert.deepEqual((await mounted(kept)).filter((l) => l.includes('image-')), [], "the recorded container's volume lives in its own mount namespace only");
  assert.equal((await after.containerStatus({ containerId: kept })).status?.mounts[0]?.image?.image, data, 'its status still names the image');
  await after.removeContainer({ containerId: kept });
  assert.deepEqual(await mounted(kept), []);
});
