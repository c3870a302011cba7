// berth-csi end to end, as root against a real driver: a volume's whole life (create →
// stage → publish → write → unpublish → unstage → snapshot → create from the snapshot →
// expand → delete), its capacity as a real limit (ENOSPC past it), read-only and block
// publishing, and nothing left mounted or loop-attached afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readdir, readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { GrpcStatus as status, grpcStatusName, type GrpcStatusCode } from '../src/server/grpc-wire.js';
import { VolumeCapability_AccessMode_Mode as Mode, VolumeUsage_Unit as Unit } from '../src/gen/csi/v1/csi_pb.js';
import { isRoot } from './helpers/paths.js';
import { loopDevicesUnder, startBerthCsi } from './helpers/berth-csi.js';
import { mountsBelow, mountTable } from '../src/linux/mount-table.js';
import { VolumeManager } from '../src/volume/volume-manager.js';
import { tempDir } from './helpers/tmp.js';

const skip = !isRoot ? 'needs root (loop devices and mounts)' : false;
const MiB = 1024 * 1024;

const mountCap = (mode = Mode.SINGLE_NODE_WRITER) => ({ accessType: { case: 'mount' as const, value: { fsType: 'ext4' } }, accessMode: { mode } });
const blockCap = { accessType: { case: 'block' as const, value: {} }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };

async function rejectsWith(promise: Promise<unknown>, code: GrpcStatusCode): Promise<void> {
  await assert.rejects(promise, (err: { code?: number; details?: string }) => {
    assert.equal(err.code, code, `expected ${grpcStatusName(code)}, got ${err.code === undefined ? err : grpcStatusName(err.code)}: ${err.details}`);
    return true;
  });
}

/** Whether this process may resize a mounted ext4 (CAP_SYS_RESOURCE, bit 24). */
async function hasSysResource(): Promise<boolean> {
  const line = (await readFile('/proc/self/status', 'utf8')).split('\n').find((l) => l.startsWith('CapEff:'))!;
  return (BigInt(`0x${line.split(/\s+/)[1]}`) & (1n << 24n)) !== 0n;
}

/** Writes until the filesystem refuses; returns the error code and how much went in. */
async function fill(path: string, chunk = MiB): Promise<{ code: string | undefined; written: number }> {
  const file = await open(path, 'w');
  const buffer = Buffer.alloc(chunk, 0x5a);
  let written = 0;
  try {
    for (;;) {
      await file.write(buffer);
      written += chunk;
      if (written > 1024 * MiB) return { code: undefined, written };
    }
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code, written };
  } finally {
    await file.close().catch(() => undefined);
  }
}

test('a volume from create to delete: data, snapshot, clone from it, expansion, ENOSPC past the size', { skip, timeout: 300_000 }, async (t) => {
  const csi = await startBerthCsi(t, 'node-a');
  const { identity, controller, node } = csi;

  const info = await identity.getPluginInfo({});
  assert.equal(info.name, 'berth.csi.local');
  assert.equal((await identity.probe({})).ready, true);
  const nodeInfo = await node.nodeGetInfo({});
  assert.equal(nodeInfo.nodeId, 'node-a');
  assert.deepEqual(nodeInfo.accessibleTopology?.segments, { 'topology.berth.csi.local/node': 'node-a' });

  // Create: rounded up to whole MiB, idempotent by name, conflicting capacity refused.
  const created = await controller.createVolume({
    name: 'pvc-1',
    capacityRange: { requiredBytes: BigInt(32 * MiB - 100) },
    volumeCapabilities: [mountCap()],
  });
  const volume = created.volume!;
  assert.equal(volume.capacityBytes, BigInt(32 * MiB));
  assert.deepEqual(volume.accessibleTopology[0]?.segments, { 'topology.berth.csi.local/node': 'node-a' });
  const again = await controller.createVolume({ name: 'pvc-1', capacityRange: { requiredBytes: BigInt(32 * MiB) }, volumeCapabilities: [mountCap()] });
  assert.equal(again.volume!.volumeId, volume.volumeId);
  await rejectsWith(controller.createVolume({ name: 'pvc-1', capacityRange: { requiredBytes: BigInt(64 * MiB) }, volumeCapabilities: [mountCap()] }), status.ALREADY_EXISTS);
  await rejectsWith(controller.createVolume({ name: 'pvc-x', volumeCapabilities: [mountCap(Mode.MULTI_NODE_MULTI_WRITER)] }), status.INVALID_ARGUMENT);
  await rejectsWith(
    controller.createVolume({ name: 'pvc-x', volumeCapabilities: [{ accessType: { case: 'mount', value: { fsType: 'btrfs' } }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } }] }),
    status.INVALID_ARGUMENT,
  );
  await rejectsWith(controller.createVolume({ name: '', volumeCapabilities: [mountCap()] }), status.INVALID_ARGUMENT);
  // The backing file is sparse: 32 MiB of capacity, far less on disk.
  const backing = join(csi.stateDir, 'data', `${volume.volumeId}.img`);
  const backingStat = await stat(backing);
  assert.equal(backingStat.size, 32 * MiB);
  assert.ok(backingStat.blocks * 512 < 32 * MiB, 'the backing file is sparse');

  // Stage and publish; the filesystem's size is the volume's.
  const staging = join(csi.dir, 'staging');
  const target = join(csi.dir, 'pods/p1/volumes/pvc-1');
  await node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: mountCap() });
  await node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: mountCap() });
  await node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCap() });
  await node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCap() });
  await rejectsWith(
    node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCap(), readonly: true }),
    status.ALREADY_EXISTS,
  );
  const fs = await statfs(target);
  assert.ok(fs.blocks * fs.bsize <= 32 * MiB && fs.blocks * fs.bsize > 24 * MiB, `filesystem of ${fs.blocks * fs.bsize} bytes`);

  await writeFile(join(target, 'hello.txt'), 'hello from berth-csi\n');
  // A read-only publish of the same volume beside it: reads work, writes are refused.
  const roTarget = join(csi.dir, 'pods/p2/volumes/pvc-1');
  await node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: roTarget, volumeCapability: mountCap(), readonly: true });
  assert.equal(await readFile(join(roTarget, 'hello.txt'), 'utf8'), 'hello from berth-csi\n');
  await assert.rejects(writeFile(join(roTarget, 'nope'), 'x'), { code: 'EROFS' });

  // The capacity is a real limit.
  const filled = await fill(join(target, 'big'));
  assert.equal(filled.code, 'ENOSPC', `wrote ${filled.written} bytes without ENOSPC`);
  assert.ok(filled.written < 32 * MiB);
  const stats = await node.nodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: target });
  const bytes = stats.usage.find((u) => u.unit === Unit.BYTES)!;
  const inodes = stats.usage.find((u) => u.unit === Unit.INODES)!;
  assert.ok(bytes.used > BigInt(20 * MiB) && bytes.total <= BigInt(32 * MiB), `bytes ${bytes.used}/${bytes.total}`);
  assert.ok(inodes.total > 0n && inodes.used > 0n);
  assert.equal(stats.volumeCondition?.abnormal, false);
  await rejectsWith(node.nodeGetVolumeStats({ volumeId: 'vol-0000000000000000', volumePath: target }), status.NOT_FOUND);
  await rejectsWith(node.nodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: join(csi.dir, 'nowhere') }), status.NOT_FOUND);
  await writeFile(join(target, 'big'), '');

  // Unpublish and unstage, each twice (idempotent); unstage refuses while published.
  await rejectsWith(node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging }), status.FAILED_PRECONDITION);
  for (const path of [target, roTarget]) {
    await node.nodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: path });
    await node.nodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: path });
  }
  await node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging });
  await node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging });
  assert.deepEqual(mountsBelow(await mountTable(), csi.dir), []);
  assert.deepEqual(loopDevicesUnder(csi.dir), []);

  // Snapshot it, and make a bigger volume from the snapshot: the same data.
  const snapshot = (await controller.createSnapshot({ sourceVolumeId: volume.volumeId, name: 'snap-1' })).snapshot!;
  assert.equal(snapshot.readyToUse, true);
  assert.equal(snapshot.sizeBytes, BigInt(32 * MiB));
  assert.equal((await controller.createSnapshot({ sourceVolumeId: volume.volumeId, name: 'snap-1' })).snapshot!.snapshotId, snapshot.snapshotId);
  const listed = await controller.listSnapshots({ sourceVolumeId: volume.volumeId });
  assert.deepEqual(listed.entries.map((e) => e.snapshot!.snapshotId), [snapshot.snapshotId]);
  const clone = (
    await controller.createVolume({
      name: 'pvc-2',
      capacityRange: { requiredBytes: BigInt(48 * MiB) },
      volumeCapabilities: [mountCap()],
      volumeContentSource: { type: { case: 'snapshot', value: { snapshotId: snapshot.snapshotId } } },
    })
  ).volume!;
  assert.equal(clone.capacityBytes, BigInt(48 * MiB));
  assert.equal(clone.contentSource?.type.case, 'snapshot');
  await rejectsWith(
    controller.createVolume({
      name: 'pvc-3',
      volumeCapabilities: [mountCap()],
      volumeContentSource: { type: { case: 'snapshot', value: { snapshotId: 'snap-0000000000000000' } } },
    }),
    status.NOT_FOUND,
  );
  const cloneStaging = join(csi.dir, 'staging-2');
  const cloneTarget = join(csi.dir, 'pods/p3/volumes/pvc-2');
  await node.nodeStageVolume({ volumeId: clone.volumeId, stagingTargetPath: cloneStaging, volumeCapability: mountCap() });
  await node.nodePublishVolume({ volumeId: clone.volumeId, stagingTargetPath: cloneStaging, targetPath: cloneTarget, volumeCapability: mountCap() });
  assert.equal(await readFile(join(cloneTarget, 'hello.txt'), 'utf8'), 'hello from berth-csi\n');
  // The clone's filesystem was grown to its 48 MiB.
  const cloneFs = await statfs(cloneTarget);
  assert.ok(cloneFs.blocks * cloneFs.bsize > 36 * MiB, `clone filesystem of ${cloneFs.blocks * cloneFs.bsize} bytes`);

  // Expand the clone to 96 MiB: the controller grows the file, the node the filesystem.
  const expanded = await controller.controllerExpandVolume({ volumeId: clone.volumeId, capacityRange: { requiredBytes: BigInt(96 * MiB) } });
  assert.equal(expanded.capacityBytes, BigInt(96 * MiB));
  assert.equal(expanded.nodeExpansionRequired, true);
  if (await hasSysResource()) {
    await node.nodeExpandVolume({ volumeId: clone.volumeId, volumePath: cloneTarget, capacityRange: { requiredBytes: BigInt(96 * MiB) } });
  } else {
    // Online ext4 resize needs CAP_SYS_RESOURCE: refused while published, done offline once not.
    t.diagnostic('no CAP_SYS_RESOURCE here: expanding offline (unpublished, still staged)');
    await rejectsWith(node.nodeExpandVolume({ volumeId: clone.volumeId, volumePath: cloneTarget }), status.FAILED_PRECONDITION);
    await node.nodeUnpublishVolume({ volumeId: clone.volumeId, targetPath: cloneTarget });
    const grown = await node.nodeExpandVolume({ volumeId: clone.volumeId, volumePath: cloneStaging });
    assert.equal(grown.capacityBytes, BigInt(96 * MiB));
    await node.nodePublishVolume({ volumeId: clone.volumeId, stagingTargetPath: cloneStaging, targetPath: cloneTarget, volumeCapability: mountCap() });
  }
  const grownFs = await statfs(cloneTarget);
  assert.ok(grownFs.blocks * grownFs.bsize > 80 * MiB, `expanded filesystem of ${grownFs.blocks * grownFs.bsize} bytes`);
  assert.equal(await readFile(join(cloneTarget, 'hello.txt'), 'utf8'), 'hello from berth-csi\n');
  await node.nodeUnpublishVolume({ volumeId: clone.volumeId, targetPath: cloneTarget });
  await node.nodeUnstageVolume({ volumeId: clone.volumeId, stagingTargetPath: cloneStaging });

  // Delete everything, each twice; the records and files go.
  await controller.deleteSnapshot({ snapshotId: snapshot.snapshotId });
  await controller.deleteSnapshot({ snapshotId: snapshot.snapshotId });
  for (const id of [volume.volumeId, clone.volumeId]) {
    await controller.deleteVolume({ volumeId: id });
    await controller.deleteVolume({ volumeId: id });
  }
  assert.deepEqual((await controller.listVolumes({})).entries, []);
  await assert.rejects(stat(backing), { code: 'ENOENT' });
  assert.deepEqual(mountsBelow(await mountTable(), csi.dir), []);
  assert.deepEqual(loopDevicesUnder(csi.dir), []);
});

test('block volumes: the loop device published as a device file, its size the capacity', { skip, timeout: 120_000 }, async (t) => {
  const csi = await startBerthCsi(t, 'node-b');
  const { controller, node } = csi;
  const volume = (await controller.createVolume({ name: 'raw-1', capacityRange: { requiredBytes: BigInt(20 * MiB) }, volumeCapabilities: [blockCap] })).volume!;
  const staging = join(csi.dir, 'staging');
  const target = join(csi.dir, 'pods/p1/volumeDevices/raw-1');
  await node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: blockCap });
  await node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: blockCap });
  const device = await stat(target);
  assert.ok(device.isBlockDevice(), 'the target is a block device');
  const file = await open(target, 'r+');
  try {
    await file.write(Buffer.from('raw bytes'), 0, 9, 0);
    // Past the end of the device: nothing more fits.
    const past = await file.write(Buffer.alloc(4096), 0, 4096, 20 * MiB).catch((err: NodeJS.ErrnoException) => err);
    assert.ok(past instanceof Error ? past.code === 'ENOSPC' : past.bytesWritten === 0, `write past the end: ${String(past instanceof Error ? past.code : past.bytesWritten)}`);
  } finally {
    await file.close();
  }
  const stats = await node.nodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: target });
  assert.equal(stats.usage[0]!.total, BigInt(20 * MiB));
  await node.nodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: target });
  await assert.rejects(stat(target), { code: 'ENOENT' });
  await node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging });
  assert.deepEqual(loopDevicesUnder(csi.dir), []);
  const head = Buffer.alloc(9);
  const backing = await open(join(csi.stateDir, 'data', `${volume.volumeId}.img`), 'r');
  await backing.read(head, 0, 9, 0);
  await backing.close();
  assert.equal(head.toString(), 'raw bytes');
  await controller.deleteVolume({ volumeId: volume.volumeId });
  assert.deepEqual(mountsBelow(await mountTable(), csi.dir), []);
});

test('a restart keeps volumes and their node state; after a reboot (mounts and loops gone) they stage again', { skip, timeout: 120_000 }, async (t) => {
  const first = await startBerthCsi(t, 'node-c');
  const volume = (await first.controller.createVolume({ name: 'keep', capacityRange: { requiredBytes: BigInt(20 * MiB) }, volumeCapabilities: [mountCap()] })).volume!;
  const staging = join(first.dir, 'staging');
  const target = join(first.dir, 'pods/p1/volumes/keep');
  await first.node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: mountCap() });
  await first.node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCap() });
  await writeFile(join(target, 'kept.txt'), 'still here\n');
  assert.equal(await first.stop(), 0, 'berth-csi exits 0 on SIGTERM');

  // A plain restart: the volume is still staged and published; the kubelet's repeated calls are no-ops.
  const second = await startBerthCsi(t, 'node-c', first.dir);
  assert.deepEqual((await second.controller.listVolumes({})).entries.map((e) => e.volume!.volumeId), [volume.volumeId]);
  await second.node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: mountCap() });
  await second.node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCap() });
  assert.equal(mountsBelow(await mountTable(), first.dir).length, 2, 'no mount was stacked twice');
  await second.stop();

  // A reboot, as the host sees one: every mount and loop device gone while berth-csi is down.
  for (const point of mountsBelow(await mountTable(), first.dir).map((m) => m.point).sort((a, b) => b.length - a.length)) {
    spawnSync('umount', [point]);
  }
  for (const device of loopDevicesUnder(first.dir)) spawnSync('losetup', ['--detach', device]);
  const third = await startBerthCsi(t, 'node-c', first.dir);
  assert.match(third.logs(), /no longer staged/);
  await third.node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: mountCap() });
  await third.node.nodePublishVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCap() });
  assert.equal(await readFile(join(target, 'kept.txt'), 'utf8'), 'still here\n');
  // A snapshot of a volume in use: frozen while copied, writable again after.
  const snap = (await third.controller.createSnapshot({ sourceVolumeId: volume.volumeId, name: 'live' })).snapshot!;
  await writeFile(join(target, 'after.txt'), 'thawed\n');
  await third.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
  await third.node.nodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: target });
  await third.node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging });
  await third.controller.deleteVolume({ volumeId: volume.volumeId });
  assert.deepEqual(mountsBelow(await mountTable(), first.dir), []);
  assert.deepEqual(loopDevicesUnder(first.dir), []);
});

test('GetCapacity counts what volumes were promised, not just what their sparse files hold; a create past it is RESOURCE_EXHAUSTED', { skip, timeout: 120_000 }, async (t) => {
  const csi = await startBerthCsi(t, 'node-d');
  const { controller } = csi;
  const capacity = async () => Number((await controller.getCapacity({ volumeCapabilities: [mountCap()] })).availableCapacity);
  const before = await capacity();
  const volume = (await controller.createVolume({ name: 'promised', capacityRange: { requiredBytes: BigInt(1024 * MiB) }, volumeCapabilities: [mountCap()] })).volume!;
  const onDisk = (await stat(join(csi.stateDir, 'data', `${volume.volumeId}.img`))).blocks * 512;
  const after = await capacity();
  t.diagnostic(`GetCapacity ${before} → ${after} after a 1 GiB volume holding ${onDisk} bytes on disk`);
  // Other work on this disk moves the free bytes a little; the promise is the 1 GiB, not the few MiB written.
  assert.ok(onDisk < 128 * MiB, `the new volume is sparse (${onDisk} bytes on disk)`);
  assert.ok(before - after > 900 * MiB, `GetCapacity dropped by only ${before - after} bytes for a 1 GiB volume`);
  await rejectsWith(
    controller.createVolume({ name: 'too-big', capacityRange: { requiredBytes: BigInt(after + 1024 * MiB) }, volumeCapabilities: [blockCap] }),
    status.RESOURCE_EXHAUSTED,
  );
  await rejectsWith(controller.controllerExpandVolume({ volumeId: volume.volumeId, capacityRange: { requiredBytes: BigInt(after + 2048 * MiB) } }), status.RESOURCE_EXHAUSTED);
  assert.deepEqual((await controller.listVolumes({})).entries.map((e) => e.volume!.volumeId), [volume.volumeId]);
  await controller.deleteVolume({ volumeId: volume.volumeId });
  assert.ok((await capacity()) - after > 900 * MiB, 'deleting it gives the promise back');
});

test('RPCs on different volumes run side by side: a create is not held up by another volume\'s snapshot copy; the same volume waits its turn', { skip, timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t, 'berth-csi-locks-');
  const volumes = new VolumeManager(join(dir, 'state'));
  await volumes.init();
  const block = [{ kind: 'block' as const, mode: 'single-node-writer' as const, mountFlags: [] }];
  const big = await volumes.createVolume({ name: 'big', requiredBytes: 512 * MiB, limitBytes: 0, uses: block, parameters: {} });
  // 384 MiB of data for the snapshot to copy (this state dir, on ext4, has no reflinks).
  const file = await open(join(dir, 'state/data', `${big.id}.img`), 'r+');
  const chunk = Buffer.alloc(4 * MiB, 0x5a);
  for (let i = 0; i < 96; i++) await file.write(chunk, 0, chunk.length, i * chunk.length);
  await file.close();
  const events: string[] = [];
  const started = Date.now();
  const snapshot = volumes.createSnapshot('big-snap', big.id).then((s) => (events.push(`snapshot done ${Date.now() - started} ms`), s));
  // Once the copy has begun (its temp file is there), an expand of the same volume waits for it.
  while (!(await readdir(join(dir, 'state/data'))).some((name) => name.startsWith('.snap-'))) await sleep(5);
  const expand = volumes.expandVolume(big.id, 600 * MiB, 0).then(() => events.push(`expand of the same volume done ${Date.now() - started} ms`));
  const small = await volumes.createVolume({ name: 'small', requiredBytes: 16 * MiB, limitBytes: 0, uses: block, parameters: {} });
  events.push(`create of another volume done ${Date.now() - started} ms`);
  await Promise.all([snapshot, expand]);
  t.diagnostic(events.join('; '));
  assert.deepEqual(
    events.map((e) => e.split(' done')[0]),
    ['create of another volume', 'snapshot', 'expand of the same volume'],
    'the create ran beside the copy; the expand of the copied volume waited for it',
  );
  await volumes.deleteSnapshot((await snapshot).id);
  for (const id of [small.id, big.id]) await volumes.deleteVolume(id);
});

test('an xfs volume grown while unstaged grows when next staged read-write; a read-only stage mounts it as it is', { skip, timeout: 120_000 }, async (t) => {
  const csi = await startBerthCsi(t, 'node-e');
  const { controller, node } = csi;
  const xfs = (mountFlags: string[] = []) => ({ accessType: { case: 'mount' as const, value: { fsType: 'xfs', mountFlags } }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } });
  const volume = (await controller.createVolume({ name: 'xfs-offline', capacityRange: { requiredBytes: BigInt(300 * MiB) }, volumeCapabilities: [xfs()] })).volume!;
  await controller.controllerExpandVolume({ volumeId: volume.volumeId, capacityRange: { requiredBytes: BigInt(400 * MiB) } });
  const staging = join(csi.dir, 'staging');
  const size = async () => {
    const fs = await statfs(staging);
    return fs.blocks * fs.bsize;
  };
  await node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: xfs(['ro']) });
  const readOnly = await size();
  await node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging });
  await node.nodeStageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: xfs() });
  const readWrite = await size();
  t.diagnostic(`xfs of a 300 → 400 MiB volume: ${readOnly} bytes staged read-only, ${readWrite} staged read-write`);
  assert.ok(readOnly < 260 * MiB && readWrite > 320 * MiB, `${readOnly} then ${readWrite}`);
  await node.nodeUnstageVolume({ volumeId: volume.volumeId, stagingTargetPath: staging });
  await controller.deleteVolume({ volumeId: volume.volumeId });
  assert.deepEqual(mountsBelow(await mountTable(), csi.dir), []);
  assert.deepEqual(loopDevicesUnder(csi.dir), []);
});
