// berth-csi's own view of volumes and snapshots, free of protobuf: what csi/ translates
// CSI messages into, and what is written to disk (one JSON record each).
import type { FsType } from './filesystems.js';

export type AccessMode = 'single-node-writer' | 'single-node-reader-only' | 'single-node-single-writer' | 'single-node-multi-writer';

/** How a volume is asked to be used: a mounted filesystem (ext4 or xfs) or a raw block device. */
export interface VolumeUse {
  kind: 'mount' | 'block';
  mode: AccessMode;
  /** The filesystem asked for (mount volumes with an fs_type only). */
  fsType?: FsType;
  /** Mount options (mount volumes only). */
  mountFlags: string[];
}

export type ContentSource = { kind: 'snapshot'; id: string } | { kind: 'volume'; id: string };

export interface VolumeRecord {
  id: string;
  /** The CO's name for it: CreateVolume's idempotency key. */
  name: string;
  capacityBytes: number;
  /** True once the backing file holds a filesystem. */
  formatted: boolean;
  /** Which filesystem it holds (records from before XFS support have none: ext4). */
  fsType?: FsType;
  parameters: Record<string, string>;
  source?: ContentSource;
  createdAt: string;
  /** Set while the volume is staged on this node. */
  staging?: { path: string; loopDevice: string; kind: 'mount' | 'block'; mountFlags: string[] };
  /** Targets it is published at, by path. */
  publishes: Record<string, { readonly: boolean; kind: 'mount' | 'block'; mode: AccessMode }>;
}

export interface SnapshotRecord {
  id: string;
  name: string;
  sourceVolumeId: string;
  sizeBytes: number;
  createdAt: string;
}

export interface CreateVolumeSpec {
  name: string;
  requiredBytes: number;
  /** 0: no limit. */
  limitBytes: number;
  uses: VolumeUse[];
  parameters: Record<string, string>;
  source?: ContentSource;
}

export interface Page<T> {
  entries: T[];
  nextToken: string;
}

export interface VolumeStats {
  kind: 'mount' | 'block';
  bytes: { total: number; available: number; used: number };
  inodes?: { total: number; available: number; used: number };
  abnormal: boolean;
  message: string;
}
