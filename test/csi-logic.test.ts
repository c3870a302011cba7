// berth-csi's pure decisions, without root: capacity ranges to sizes, capability checks,
// list tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { VolumeCapabilitySchema, VolumeCapability_AccessMode_Mode as Mode } from '../src/gen/csi/v1/csi_pb.js';
import { DEFAULT_VOLUME_BYTES, MIN_VOLUME_BYTES, VolumeManager, fsTypeFor, sizeFor } from '../src/volume/volume-manager.js';
import { minBytesOf } from '../src/volume/filesystems.js';
import { KeyedMutex } from '../src/util/locks.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { unsupported, volumeUse } from '../src/csi/translate.js';
import { BerthError } from '../src/errors.js';

const MiB = 1024 * 1024;
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as BerthError).code;
  }
  return 'OK';
};

test('capacity ranges: rounded up to whole MiB, at least the minimum, never past the limit', () => {
  assert.equal(sizeFor(0, 0), DEFAULT_VOLUME_BYTES);
  assert.equal(sizeFor(1, 0), MIN_VOLUME_BYTES);
  assert.equal(sizeFor(32 * MiB - 1, 0), 32 * MiB);
  assert.equal(sizeFor(32 * MiB + 1, 0), 33 * MiB);
  assert.equal(sizeFor(0, 64 * MiB), 64 * MiB);
  assert.equal(sizeFor(19 * MiB + 1, 20 * MiB + 4096), 20 * MiB);
  assert.equal(code(() => sizeFor(20 * MiB + 1, 20 * MiB + 4096)), 'OutOfRange', 'no whole MiB fits');
  assert.equal(sizeFor(20 * MiB, 20 * MiB), 20 * MiB);
  assert.equal(code(() => sizeFor(30 * MiB + 1, 30 * MiB + 2)), 'OutOfRange');
  assert.equal(code(() => sizeFor(1, MiB)), 'OutOfRange');
  assert.equal(code(() => sizeFor(2 * MiB, MiB)), 'InvalidArgument');
  // XFS volumes are at least 300 MiB (mkfs.xfs refuses smaller).
  assert.equal(sizeFor(64 * MiB, 0, minBytesOf('xfs')), 300 * MiB);
  assert.equal(code(() => sizeFor(64 * MiB, 128 * MiB, minBytesOf('xfs'))), 'OutOfRange');
  assert.equal(minBytesOf('ext4'), MIN_VOLUME_BYTES);
});

test('fs types: the one the mount capabilities name, ext4 when none, none for block-only', () => {
  const mount = (fsType?: 'ext4' | 'xfs') => ({ kind: 'mount' as const, mode: 'single-node-writer' as const, mountFlags: [], ...(fsType ? { fsType } : {}) });
  const block = { kind: 'block' as const, mode: 'single-node-writer' as const, mountFlags: [] };
  assert.equal(fsTypeFor([mount()]), 'ext4');
  assert.equal(fsTypeFor([mount('xfs'), mount()]), 'xfs');
  assert.equal(fsTypeFor([block]), undefined);
  assert.equal(code(() => fsTypeFor([mount('xfs'), mount('ext4')])), 'InvalidArgument');
  // A StorageClass's fsType parameter: the default when the capabilities name none.
  assert.equal(fsTypeFor([mount()], 'xfs'), 'xfs');
  assert.equal(fsTypeFor([mount('xfs')], 'xfs'), 'xfs');
  assert.equal(code(() => fsTypeFor([mount('ext4')], 'xfs')), 'InvalidArgument');
  assert.equal(code(() => fsTypeFor([mount()], 'btrfs')), 'InvalidArgument');
});

test('KeyedMutex.lockAll: holders of overlapping key sets take turns and never deadlock; disjoint ones overlap', async () => {
  const locks = new KeyedMutex();
  const inside = new Map<string, number>();
  const log: string[] = [];
  const hold = (name: string, keys: string[], ms: number) =>
    locks.lockAll(keys, async () => {
      for (const k of new Set(keys)) {
        assert.equal(inside.get(k) ?? 0, 0, `${name}: ${k} is held by another`);
        inside.set(k, 1);
      }
      log.push(`${name}+`);
      await sleep(ms);
      log.push(`${name}-`);
      for (const k of keys) inside.set(k, 0);
    });
  // a and b ask for the same two keys in opposite orders: taken sorted, they cannot deadlock.
  await Promise.all([hold('a', ['x', 'y'], 30), hold('b', ['y', 'x'], 30), hold('c', ['z'], 5), hold('d', ['x', 'x'], 1)]);
  assert.ok(log.indexOf('c+') < log.indexOf('a-') && log.indexOf('a+') < log.indexOf('c-'), `c (disjoint keys) ran while a held x and y: ${log.join(' ')}`);
  assert.ok(log.indexOf('b+') > log.indexOf('a-') && log.indexOf('d+') > log.indexOf('a-'));
});

test('capabilities: single-node modes, mount (ext4 or xfs) or block', () => {
  const cap = (mode: Mode, access: 'mount' | 'block' | undefined, fsType = '') =>
    create(VolumeCapabilitySchema, {
      accessMode: { mode },
      accessType: access === 'mount' ? { case: 'mount', value: { fsType, mountFlags: ['noatime'] } } : access === 'block' ? { case: 'block', value: {} } : { case: undefined },
    });
  assert.equal(unsupported(cap(Mode.SINGLE_NODE_WRITER, 'mount', 'ext4')), undefined);
  assert.equal(unsupported(cap(Mode.SINGLE_NODE_READER_ONLY, 'block')), undefined);
  assert.match(unsupported(cap(Mode.MULTI_NODE_READER_ONLY, 'mount')) ?? '', /single-node/);
  assert.equal(unsupported(cap(Mode.SINGLE_NODE_WRITER, 'mount', 'xfs')), undefined);
  assert.match(unsupported(cap(Mode.SINGLE_NODE_WRITER, 'mount', 'btrfs')) ?? '', /ext4 or xfs/);
  assert.deepEqual(volumeUse(cap(Mode.SINGLE_NODE_WRITER, 'mount', 'xfs')), { kind: 'mount', mode: 'single-node-writer', fsType: 'xfs', mountFlags: ['noatime'] });
  assert.match(unsupported(cap(Mode.SINGLE_NODE_WRITER, undefined)) ?? '', /access type/);
  assert.match(unsupported(cap(Mode.UNKNOWN, 'mount')) ?? '', /access mode/);
  assert.deepEqual(volumeUse(cap(Mode.SINGLE_NODE_SINGLE_WRITER, 'mount')), { kind: 'mount', mode: 'single-node-single-writer', mountFlags: ['noatime'] });
  assert.equal(code(() => volumeUse(undefined)), 'InvalidArgument');
  assert.equal(code(() => volumeUse(cap(Mode.MULTI_NODE_MULTI_WRITER, 'block'))), 'InvalidArgument');
});

test('list tokens: one berth-csi did not give out is ABORTED', () => {
  const volumes = new VolumeManager('/nonexistent');
  assert.equal(code(() => volumes.listVolumes(0, 'invalid-token')), 'Aborted');
  assert.equal(code(() => volumes.listSnapshots({}, 0, 'invalid-token')), 'Aborted');
  assert.deepEqual(volumes.listVolumes(2, 'vol-0000000000000000'), { entries: [], nextToken: '' });
  assert.equal(code(() => volumes.listVolumes(-1, '')), 'InvalidArgument');
});
