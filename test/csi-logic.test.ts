// berth-csi's pure decisions, without root: capacity ranges to sizes, capability checks,
// list tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { VolumeCapabilitySchema, VolumeCapability_AccessMode_Mode as Mode } from '../src/gen/csi/v1/csi_pb.js';
import { DEFAULT_VOLUME_BYTES, MIN_VOLUME_BYTES, VolumeManager, sizeFor } from '../src/volume/volume-manager.js';
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
});

test('capabilities: single-node modes, mount (ext4) or block', () => {
  const cap = (mode: Mode, access: 'mount' | 'block' | undefined, fsType = '') =>
    create(VolumeCapabilitySchema, {
      accessMode: { mode },
      accessType: access === 'mount' ? { case: 'mount', value: { fsType, mountFlags: ['noatime'] } } : access === 'block' ? { case: 'block', value: {} } : { case: undefined },
    });
  assert.equal(unsupported(cap(Mode.SINGLE_NODE_WRITER, 'mount', 'ext4')), undefined);
  assert.equal(unsupported(cap(Mode.SINGLE_NODE_READER_ONLY, 'block')), undefined);
  assert.match(unsupported(cap(Mode.MULTI_NODE_READER_ONLY, 'mount')) ?? '', /single-node/);
  assert.match(unsupported(cap(Mode.SINGLE_NODE_WRITER, 'mount', 'xfs')) ?? '', /ext4 only/);
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
