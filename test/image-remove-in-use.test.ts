// RemoveImage of the image a container is made of: as containerd, the image record goes
// (ListImages no longer shows it) while the container's snapshots stay held by the
// container — it keeps working, across a berthd restart (whose garbage collection runs
// after the containers are loaded), and the snapshots go with the last container.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageService, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { launchBerthd } from './helpers/berthd.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { cleanup } from './helpers/scope.js';

test('RemoveImage of a running container’s image removes the record and keeps its snapshots until the container goes', { skip: containerTestSkip }, async (t) => {
  const { berthd, runtime, registry, podId } = await setupContainerTest(t);
  // An image of its own (two layers), so its snapshots are nobody else's.
  const app = `${registry.host}/test/rmi-in-use:1`;
  await pushImage(registry, 'test/rmi-in-use', '1', {
    layers: [buildLayer(busyboxEntries()), buildLayer([{ type: 'file', path: 'marker', content: 'from the removed image\n' }])],
    config: { Env: ['PATH=/bin'] },
  });
  let channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  let images = serviceClient(ImageService, channel);
  const { imageRef } = await images.pullImage({ image: { image: app } });
  const snapshotDir = join(berthd.dir, 'root', 'snapshots');
  const before = new Set(await readdir(snapshotDir));

  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'rmi' }, image: { image: app }, command: ['sleep', '600'] } });
  await runtime.startContainer({ containerId });

  await images.removeImage({ image: { image: app } });
  assert.equal((await images.imageStatus({ image: { image: imageRef } })).image, undefined, 'the image record is gone');
  assert.ok(!(await images.listImages({})).images.some((i) => i.id === imageRef), 'ListImages no longer shows it');
  assert.deepEqual(new Set(await readdir(snapshotDir)), before, 'every snapshot stays: the container holds them');

  const cat = async (rt: typeof runtime) => {
    const r = await rt.execSync({ containerId, cmd: ['cat', '/marker'], timeout: 10n });
    assert.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
    return Buffer.from(r.stdout).toString();
  };
  assert.equal(await cat(runtime), 'from the removed image\n', 'the container still reads its image layers');

  // A restart collects garbage after loading the containers: nothing of theirs goes.
  await berthd.stop();
  const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  channel.close();
  channel = openChannel(again.endpoint);
  const runtime2 = serviceClient(RuntimeService, channel);
  images = serviceClient(ImageService, channel);
  assert.deepEqual(new Set(await readdir(snapshotDir)), before, 'recovery kept the held snapshots');
  assert.equal(await cat(runtime2), 'from the removed image\n');
  // A new container of the removed image needs it pulled again (it is not listed).
  await assert.rejects(runtime2.createContainer({ podSandboxId: podId, config: { metadata: { name: 'rmi2' }, image: { image: app } } }), /not found/i);

  await runtime2.stopContainer({ containerId, timeout: 0n });
  await runtime2.removeContainer({ containerId });
  const after = new Set(await readdir(snapshotDir));
  // The top layer was only this image's: it goes with its last container (the busybox
  // layer may be the other test image's too, which stays).
  assert.ok(after.size < before.size && [...after].every((s) => before.has(s)), `the removed image's own snapshots went (before ${[...before]}, after ${[...after]})`);
});
