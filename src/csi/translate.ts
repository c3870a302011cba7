// Between CSI messages and berth-csi's own types: a request's shape is checked here, once
// (missing required fields → INVALID_ARGUMENT, as the spec's comments say).
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  VolumeCapability_AccessMode_Mode as Mode,
  type CapacityRange,
  type SnapshotSchema,
  type VolumeCapability,
  type VolumeContentSource,
  type VolumeSchema,
} from '../gen/csi/v1/csi_pb.js';
import { invalidArgument } from '../errors.js';
import type { AccessMode, ContentSource, SnapshotRecord, VolumeRecord, VolumeUse } from '../volume/volume-types.js';
import { FS_TYPES, isFsType } from '../volume/filesystems.js';

export const DRIVER_NAME = 'berth.csi.local';
/** The topology key every volume and the node carry: volumes live on one node. */
export const TOPOLOGY_KEY = 'topology.berth.csi.local/node';

const modes: Partial<Record<Mode, AccessMode>> = {
  [Mode.SINGLE_NODE_WRITER]: 'single-node-writer',
  [Mode.SINGLE_NODE_READER_ONLY]: 'single-node-reader-only',
  [Mode.SINGLE_NODE_SINGLE_WRITER]: 'single-node-single-writer',
  [Mode.SINGLE_NODE_MULTI_WRITER]: 'single-node-multi-writer',
};

export function required<T>(value: T | undefined | null | '', field: string): T {
  if (value === undefined || value === null || value === '') throw invalidArgument(`${field} is required`);
  return value;
}

/** Why a capability is not one berth-csi supports, or undefined when it is. */
export function unsupported(cap: VolumeCapability): string | undefined {
  const mode = cap.accessMode?.mode ?? Mode.UNKNOWN;
  if (mode === Mode.UNKNOWN) return 'an access mode is required';
  if (!modes[mode]) return `access mode ${Mode[mode]} is not supported: berth-csi volumes are node-local (single-node modes only)`;
  if (cap.accessType.case === undefined) return 'an access type (mount or block) is required';
  if (cap.accessType.case === 'mount') {
    const fsType = cap.accessType.value.fsType;
    if (fsType !== '' && !isFsType(fsType)) return `fs_type "${fsType}" is not supported: berth-csi formats ${FS_TYPES.join(' or ')}`;
  }
  return undefined;
}

/** A capability as berth-csi's VolumeUse; unsupported ones are INVALID_ARGUMENT. */
export function volumeUse(cap: VolumeCapability | undefined, field = 'volume_capability'): VolumeUse {
  const c = required(cap, field);
  const why = unsupported(c);
  if (why) throw invalidArgument(`${field}: ${why}`);
  const fsType = c.accessType.case === 'mount' ? c.accessType.value.fsType : '';
  return {
    kind: c.accessType.case === 'block' ? 'block' : 'mount',
    mode: modes[c.accessMode!.mode]!,
    ...(isFsType(fsType) ? { fsType } : {}),
    mountFlags: c.accessType.case === 'mount' ? c.accessType.value.mountFlags : [],
  };
}

export function capacityOf(range: CapacityRange | undefined): { requiredBytes: number; limitBytes: number } {
  const requiredBytes = Number(range?.requiredBytes ?? 0n);
  const limitBytes = Number(range?.limitBytes ?? 0n);
  if (requiredBytes < 0 || limitBytes < 0) throw invalidArgument('capacity_range bytes must not be negative');
  return { requiredBytes, limitBytes };
}

export function contentSourceOf(source: VolumeContentSource | undefined): ContentSource | undefined {
  switch (source?.type.case) {
    case 'snapshot':
      return { kind: 'snapshot', id: required(source.type.value.snapshotId, 'volume_content_source.snapshot.snapshot_id') };
    case 'volume':
      return { kind: 'volume', id: required(source.type.value.volumeId, 'volume_content_source.volume.volume_id') };
    default:
      return undefined;
  }
}

export function topology(nodeId: string) {
  return { segments: { [TOPOLOGY_KEY]: nodeId } };
}

export function volumeMessage(volume: VolumeRecord, nodeId: string): MessageInitShape<typeof VolumeSchema> {
  return {
    volumeId: volume.id,
    capacityBytes: BigInt(volume.capacityBytes),
    volumeContext: {},
    accessibleTopology: [topology(nodeId)],
    ...(volume.source
      ? {
          contentSource: {
            type:
              volume.source.kind === 'snapshot'
                ? { case: 'snapshot' as const, value: { snapshotId: volume.source.id } }
                : { case: 'volume' as const, value: { volumeId: volume.source.id } },
          },
        }
      : {}),
  };
}

export function snapshotMessage(snapshot: SnapshotRecord): MessageInitShape<typeof SnapshotSchema> {
  return {
    snapshotId: snapshot.id,
    sourceVolumeId: snapshot.sourceVolumeId,
    sizeBytes: BigInt(snapshot.sizeBytes),
    creationTime: timestampFromDate(new Date(snapshot.createdAt)),
    readyToUse: true,
  };
}
