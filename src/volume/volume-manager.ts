// berth-csi's volumes: each one a sparse file under the state dir holding an ext4 or XFS
// filesystem (or raw bytes for block-only volumes), loop-attached and mounted at its
// staging path on NodeStageVolume, bind-mounted to each target on NodePublishVolume.
// Snapshots are copies of the file (reflinks where the state dir's filesystem has them,
// sparse copies where not). Every record is written atomically. Changes lock what they
// touch, by key: a volume's or snapshot's id, or the name a create is keyed on; so two
// RPCs on one volume never interleave half-made state, and RPCs on different volumes
// run side by side.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, stat, statfs, truncate, lstat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RecordStore } from '../store/record-store.js';
import { isAtomicTempFile } from '../store/atomic-file.js';
import { KeyedMutex, Mutex } from '../util/locks.js';
import { runCommand } from '../linux/command.js';
import { isMountPoint } from '../linux/mount-table.js';
import { attachLoop, blockDeviceSize, detachLoops, loopDevicesOf, filesystemTypeOf, growExt4, refreshLoopSize, waitUntilReleased } from '../linux/loop-device.js';
import { aborted, alreadyExists, failedPrecondition, invalidArgument, notFound, outOfRange, resourceExhausted } from '../errors.js';
import { DEFAULT_FS_TYPE, growMounted, isFsType, makeFilesystem, minBytesOf, mountFilesystem, type FsType } from './filesystems.js';
import type { AccessMode, ContentSource, CreateVolumeSpec, Page, SnapshotRecord, VolumeRecord, VolumeStats, VolumeUse } from './volume-types.js';

const MiB = 1024 * 1024;
/** Volumes are whole MiB: the backing file's size, and so the capacity reported. */
export const SIZE_ALIGN = MiB;
/** ext4 with a journal needs room; smaller requests are rounded up to this. */
export const MIN_VOLUME_BYTES = 16 * MiB;
/** What a request with no capacity range gets. */
export const DEFAULT_VOLUME_BYTES = 1024 * MiB;

/** How long unstage waits for a loop device's last mount (in another namespace) to go. */
const RELEASE_WAIT_MS = 10_000;

const VOLUME_ID = /^vol-[0-9a-f]{16}$/;
const SNAPSHOT_ID = /^snap-[0-9a-f]{16}$/;

/**
 * The size a capacity range gets: required rounded up to whole MiB and to the smallest
 * volume (minBytes: 16 MiB, 300 MiB for XFS), never past the limit.
 */
export function sizeFor(requiredBytes: number, limitBytes: number, minBytes = MIN_VOLUME_BYTES): number {
  if (requiredBytes < 0 || limitBytes < 0) throw invalidArgument('capacity_range bytes must not be negative');
  if (limitBytes > 0 && requiredBytes > limitBytes) throw invalidArgument(`capacity_range: required_bytes ${requiredBytes} is more than limit_bytes ${limitBytes}`);
  let size = requiredBytes > 0 ? requiredBytes : limitBytes > 0 ? Math.min(limitBytes, DEFAULT_VOLUME_BYTES) : DEFAULT_VOLUME_BYTES;
  size = Math.ceil(Math.max(size, minBytes) / SIZE_ALIGN) * SIZE_ALIGN;
  if (limitBytes > 0 && size > limitBytes) {
    size = Math.floor(limitBytes / SIZE_ALIGN) * SIZE_ALIGN;
    if (size < Math.max(requiredBytes, minBytes)) {
      throw outOfRange(`capacity_range: berth-csi volumes are whole MiB of at least ${minBytes} bytes; none fits ${requiredBytes}..${limitBytes}`);
    }
  }
  return size;
}

/**
 * The filesystem a create asks for: the fs_type its mount capabilities name (one at
 * most), else the `fsType` parameter (a StorageClass's default), else ext4.
 */
export function fsTypeFor(uses: VolumeUse[], parameter?: string): FsType | undefined {
  if (parameter !== undefined && !isFsType(parameter)) throw invalidArgument(`parameters.fsType "${parameter}" is not one berth-csi formats (ext4, xfs)`);
  if (!uses.some((u) => u.kind === 'mount')) return undefined;
  const named = [...new Set(uses.map((u) => u.fsType).filter((f): f is FsType => f !== undefined))];
  if (named.length > 1) throw invalidArgument(`volume_capabilities ask for more than one fs_type (${named.join(', ')})`);
  if (named[0] && parameter && named[0] !== parameter) throw invalidArgument(`volume_capabilities ask for ${named[0]}, parameters.fsType for ${parameter}`);
  return named[0] ?? parameter ?? DEFAULT_FS_TYPE;
}

/** Lock keys: a volume's or snapshot's id, or the name a create is idempotent on. */
const key = {
  volume: (id: string) => `volume:${id}`,
  snapshot: (id: string) => `snapshot:${id}`,
  volumeName: (name: string) => `volume-name:${name}`,
  snapshotName: (name: string) => `snapshot-name:${name}`,
  source: (source: ContentSource) => (source.kind === 'snapshot' ? `snapshot:${source.id}` : `volume:${source.id}`),
};

/** Copies a volume or snapshot file: a reflink (FICLONE) where the filesystem has them, else a sparse copy. */
function copyImage(from: string, to: string, doing: string): Promise<unknown> {
  return runCommand('cp', ['--reflink=auto', '--sparse=always', from, to], doing);
}

/** The bytes a file has on disk (its allocated blocks). */
async function allocatedBytes(path: string): Promise<number> {
  try {
    return (await stat(path)).blocks * 512;
  } catch {
    return 0;
  }
}

function fits(size: number, requiredBytes: number, limitBytes: number): boolean {
  return size >= requiredBytes && (limitBytes === 0 || size <= limitBytes);
}

const newId = (prefix: string) => `${prefix}-${randomBytes(8).toString('hex')}`;

export class VolumeManager {
  readonly #volumes = new Map<string, VolumeRecord>();
  readonly #snapshots = new Map<string, SnapshotRecord>();
  readonly #volumeStore: RecordStore<VolumeRecord>;
  readonly #snapshotStore: RecordStore<SnapshotRecord>;
  readonly #dataDir: string;
  readonly #locks = new KeyedMutex();
  /** Held while a create or expand checks free capacity and reserves what it takes. */
  readonly #capacityLock = new Mutex();
  /** Bytes reserved by creates and expands that have not yet saved their record. */
  #reserved = 0;

  constructor(readonly stateDir: string) {
    this.#volumeStore = new RecordStore(join(stateDir, 'volumes'));
    this.#snapshotStore = new RecordStore(join(stateDir, 'snapshots'));
    this.#dataDir = join(stateDir, 'data');
  }

  /** Loads the records; backing files no record names (a crash mid-create or mid-delete) are removed. */
  async init(): Promise<string[]> {
    await mkdir(this.#dataDir, { recursive: true, mode: 0o700 });
    const volumes = await this.#volumeStore.loadAll();
    const snapshots = await this.#snapshotStore.loadAll();
    for (const v of volumes.records) this.#volumes.set(v.id, v);
    for (const s of snapshots.records) this.#snapshots.set(s.id, s);
    const problems = [...volumes.problems, ...snapshots.problems];
    for (const name of await readdir(this.#dataDir)) {
      const id = name.replace(/\.img$/, '');
      if (isAtomicTempFile(name) || (name.endsWith('.img') && !this.#volumes.has(id) && !this.#snapshots.has(id))) {
        await rm(join(this.#dataDir, name), { force: true });
        problems.push(`removed ${name}: no record owns it (left by an interrupted create or delete)`);
      }
    }
    for (const volume of [...this.#volumes.values()]) {
      const fixed = await this.#reconcile(volume);
      if (fixed) problems.push(fixed);
    }
    return problems;
  }

  /**
   * Brings a record back in line with the host after a restart: a reboot detaches loop
   * devices and drops mounts, so a volume whose loop device or mounts are gone is no
   * longer staged or published there (the kubelet stages and publishes it again).
   */
  async #reconcile(volume: VolumeRecord): Promise<string | undefined> {
    if (!volume.staging && Object.keys(volume.publishes).length === 0) return undefined;
    const attached = await loopDevicesOf(this.#file(volume.id));
    const staging = volume.staging;
    const stagingAlive = staging !== undefined && attached.includes(staging.loopDevice) && (staging.kind === 'block' || (await isMountPoint(staging.path)));
    const publishes: VolumeRecord['publishes'] = {};
    for (const [target, publish] of Object.entries(volume.publishes)) {
      if (stagingAlive && (await isMountPoint(target))) publishes[target] = publish;
    }
    if (stagingAlive && Object.keys(publishes).length === Object.keys(volume.publishes).length) return undefined;
    const { staging: _, ...rest } = volume;
    const reconciled: VolumeRecord = stagingAlive ? { ...volume, publishes } : { ...rest, publishes: {} };
    await this.#saveVolume(reconciled);
    return `volume ${volume.id}: ${stagingAlive ? 'dropped publishes whose mounts are gone' : 'no longer staged (its loop device or mount is gone)'}`;
  }

  #file(id: string): string {
    return join(this.#dataDir, `${id}.img`);
  }

  getVolume(id: string): VolumeRecord {
    const volume = this.#volumes.get(id);
    if (!volume) throw notFound('volume', id);
    return volume;
  }

  getSnapshot(id: string): SnapshotRecord {
    const snapshot = this.#snapshots.get(id);
    if (!snapshot) throw notFound('snapshot', id);
    return snapshot;
  }

  async #saveVolume(volume: VolumeRecord): Promise<void> {
    await this.#volumeStore.put(volume.id, volume);
    this.#volumes.set(volume.id, volume);
  }

  // -------------------------------------------------------------------------------------
  // Controller

  createVolume(spec: CreateVolumeSpec): Promise<VolumeRecord> {
    const keys = [key.volumeName(spec.name), ...(spec.source ? [key.source(spec.source)] : [])];
    return this.#locks.lockAll(keys, async () => {
      const existing = [...this.#volumes.values()].find((v) => v.name === spec.name);
      if (existing) {
        if (!fits(existing.capacityBytes, spec.requiredBytes, spec.limitBytes)) {
          throw alreadyExists(`volume "${spec.name}" exists with ${existing.capacityBytes} bytes, which does not fit the capacity range asked for`);
        }
        if (!sameSource(existing.source, spec.source)) throw alreadyExists(`volume "${spec.name}" exists with another content source`);
        return existing;
      }
      const wanted = fsTypeFor(spec.uses, spec.parameters['fsType']);
      const sourceFile = spec.source ? this.#sourceFile(spec.source) : undefined;
      const sourceBytes = sourceFile ? (await stat(sourceFile.path)).size : 0;
      const size = sizeFor(Math.max(spec.requiredBytes, sourceBytes), spec.limitBytes, minBytesOf(wanted));
      if (size < sourceBytes) throw outOfRange(`the content source holds ${sourceBytes} bytes, more than limit_bytes ${spec.limitBytes}`);
      const id = newId('vol');
      const file = this.#file(id);
      const temp = join(this.#dataDir, `.${id}.img.tmp`);
      let fsType: FsType | undefined;
      const release = await this.#reserve(size, `volume "${spec.name}"`);
      try {
        if (sourceFile) {
          await sourceFile.frozen(() => copyImage(sourceFile.path, temp, `copying ${spec.source!.kind} ${spec.source!.id}`));
          await truncate(temp, size);
          const found = await filesystemTypeOf(temp);
          fsType = isFsType(found) ? found : undefined;
          if (fsType && wanted && (spec.uses.some((u) => u.fsType) || spec.parameters['fsType']) && fsType !== wanted) {
            throw invalidArgument(`the content source holds ${fsType}, not the ${wanted} volume_capabilities ask for`);
          }
          // ext4 grows offline here; XFS only mounted, so it grows when first staged.
          if (fsType === 'ext4' && size > sourceBytes) await growExt4(temp, true);
        } else {
          await (await open(temp, 'wx', 0o600)).close();
          await truncate(temp, size);
          if (wanted) {
            await makeFilesystem(wanted, temp);
            fsType = wanted;
          }
        }
        await rename(temp, file);
      } catch (err) {
        await rm(temp, { force: true });
        release();
        throw err;
      }
      const volume: VolumeRecord = {
        id,
        name: spec.name,
        capacityBytes: size,
        formatted: fsType !== undefined,
        ...(fsType ? { fsType } : {}),
        parameters: spec.parameters,
        ...(spec.source ? { source: spec.source } : {}),
        createdAt: new Date().toISOString(),
        publishes: {},
      };
      try {
        await this.#saveVolume(volume);
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      } finally {
        release();
      }
      return volume;
    });
  }

  /**
   * Checks that bytes more fit in what the state dir can still give and holds them until
   * the caller's record is saved (then the record counts them): so two creates running
   * side by side cannot both be promised the same free space.
   */
  #reserve(bytes: number, what: string): Promise<() => void> {
    return this.#capacityLock.lock(async () => {
      const available = await this.availableBytes();
      if (bytes > available) {
        throw resourceExhausted(`${what} needs ${bytes} bytes; the state dir ${this.stateDir} can promise only ${available} more`);
      }
      this.#reserved += bytes;
      let released = false;
      return () => {
        if (!released) this.#reserved -= bytes;
        released = true;
      };
    });
  }

  /** The file a content source is copied from, and how to hold it still while copying. */
  #sourceFile(source: ContentSource): { path: string; frozen: <T>(work: () => Promise<T>) => Promise<T> } {
    if (source.kind === 'snapshot') {
      this.getSnapshot(source.id);
      return { path: this.#file(source.id), frozen: (work) => work() };
    }
    const volume = this.getVolume(source.id);
    return { path: this.#file(volume.id), frozen: (work) => this.#frozen(volume, work) };
  }

  /** Runs work with a staged volume's filesystem frozen (fsfreeze), so a copy of its file is consistent. */
  async #frozen<T>(volume: VolumeRecord, work: () => Promise<T>): Promise<T> {
    const staged = volume.staging?.kind === 'mount' ? volume.staging.path : undefined;
    if (!staged) return work();
    await runCommand('fsfreeze', ['--freeze', staged], `freezing ${staged} for a consistent copy`);
    try {
      return await work();
    } finally {
      await runCommand('fsfreeze', ['--unfreeze', staged], `thawing ${staged}`);
    }
  }

  deleteVolume(id: string): Promise<void> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.#volumes.get(id);
      if (!volume) return; // already gone: DeleteVolume is idempotent
      if (volume.staging || Object.keys(volume.publishes).length > 0) {
        throw failedPrecondition(`volume ${id} is still staged or published on this node; unpublish and unstage it first`);
      }
      await detachLoops(this.#file(id)).catch(() => undefined);
      await this.#volumeStore.delete(id);
      this.#volumes.delete(id);
      await rm(this.#file(id), { force: true });
    });
  }

  listVolumes(maxEntries: number, startingToken: string): Page<VolumeRecord> {
    return page([...this.#volumes.values()], VOLUME_ID, maxEntries, startingToken);
  }

  /**
   * What new volumes can still be given: the state dir filesystem's free bytes, less what
   * existing volumes were promised and have not taken yet (a sparse file of 1 GiB holding
   * 10 MiB will take up to 1014 MiB more as it fills), less reservations in flight.
   * Snapshots never grow, so what they hold is already out of the free bytes. (Where
   * the state dir has reflinks, a volume's blocks shared with its snapshots are counted as
   * taken, though overwriting them takes new ones: there this under-counts the promise.)
   */
  async availableBytes(): Promise<number> {
    const fs = await statfs(this.stateDir);
    let promised = this.#reserved;
    for (const volume of this.#volumes.values()) {
      promised += Math.max(0, volume.capacityBytes - (await allocatedBytes(this.#file(volume.id))));
    }
    return Math.max(0, fs.bavail * fs.bsize - promised);
  }

  /** Grows a volume's file; the node grows the loop device and filesystem (NodeExpandVolume). */
  expandVolume(id: string, requiredBytes: number, limitBytes: number): Promise<VolumeRecord> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.getVolume(id);
      if (fits(volume.capacityBytes, requiredBytes, limitBytes) && volume.capacityBytes >= requiredBytes) return volume;
      const size = sizeFor(requiredBytes, limitBytes, minBytesOf(volume.fsType));
      if (size < volume.capacityBytes) throw outOfRange(`volume ${id} has ${volume.capacityBytes} bytes; berth-csi does not shrink volumes`);
      const release = await this.#reserve(size - volume.capacityBytes, `growing volume ${id}`);
      try {
        await truncate(this.#file(id), size);
        const grown = { ...volume, capacityBytes: size };
        await this.#saveVolume(grown);
        return grown;
      } finally {
        release();
      }
    });
  }

  createSnapshot(name: string, sourceVolumeId: string): Promise<SnapshotRecord> {
    return this.#locks.lockAll([key.snapshotName(name), key.volume(sourceVolumeId)], async () => {
      const existing = [...this.#snapshots.values()].find((s) => s.name === name);
      if (existing) {
        if (existing.sourceVolumeId !== sourceVolumeId) throw alreadyExists(`snapshot "${name}" exists for another volume (${existing.sourceVolumeId})`);
        return existing;
      }
      const volume = this.getVolume(sourceVolumeId);
      const id = newId('snap');
      const temp = join(this.#dataDir, `.${id}.img.tmp`);
      try {
        await this.#frozen(volume, () => copyImage(this.#file(volume.id), temp, `snapshotting volume ${volume.id}`));
        await rename(temp, this.#file(id));
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
      const snapshot: SnapshotRecord = { id, name, sourceVolumeId, sizeBytes: volume.capacityBytes, createdAt: new Date().toISOString() };
      try {
        await this.#snapshotStore.put(id, snapshot);
      } catch (err) {
        await rm(this.#file(id), { force: true });
        throw err;
      }
      this.#snapshots.set(id, snapshot);
      return snapshot;
    });
  }

  deleteSnapshot(id: string): Promise<void> {
    return this.#locks.lock(key.snapshot(id), async () => {
      if (!this.#snapshots.has(id)) return;
      await this.#snapshotStore.delete(id);
      this.#snapshots.delete(id);
      await rm(this.#file(id), { force: true });
    });
  }

  listSnapshots(filter: { snapshotId?: string; sourceVolumeId?: string }, maxEntries: number, startingToken: string): Page<SnapshotRecord> {
    let all = [...this.#snapshots.values()];
    if (filter.snapshotId) all = all.filter((s) => s.id === filter.snapshotId);
    if (filter.sourceVolumeId) all = all.filter((s) => s.sourceVolumeId === filter.sourceVolumeId);
    return page(all, SNAPSHOT_ID, maxEntries, startingToken);
  }

  // -------------------------------------------------------------------------------------
  // Node

  stage(id: string, stagingPath: string, use: VolumeUse): Promise<void> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.getVolume(id);
      const held = volume.formatted ? (volume.fsType ?? DEFAULT_FS_TYPE) : undefined;
      if (use.kind === 'mount' && held && use.fsType && use.fsType !== held) {
        throw failedPrecondition(`volume ${id} holds ${held}, not the ${use.fsType} volume_capability asks for`);
      }
      if (volume.staging) {
        if (volume.staging.path === stagingPath && volume.staging.kind === use.kind) return;
        throw alreadyExists(`volume ${id} is already staged at ${volume.staging.path} as a ${volume.staging.kind} volume`);
      }
      const file = this.#file(id);
      const loopDevice = await attachLoop(file);
      let fsType = held;
      try {
        if (use.kind === 'mount') {
          if (!fsType) {
            // A volume made for block access, now staged as a filesystem: format it only
            // when nothing is on it, as Kubernetes' safe format-and-mount does.
            const found = await filesystemTypeOf(loopDevice);
            const parameter = volume.parameters['fsType'];
            const wanted = use.fsType ?? (isFsType(found) ? found : isFsType(parameter) ? parameter : DEFAULT_FS_TYPE);
            if (found && found !== wanted) throw failedPrecondition(`volume ${id} holds a ${found} filesystem, not ${wanted}`);
            if (!found) await makeFilesystem(wanted, loopDevice);
            fsType = wanted;
          }
          await mkdir(stagingPath, { recursive: true });
          // Grown by ControllerExpandVolume while unstaged, or cloned into a bigger volume:
          // the filesystem is grown to the device as it is mounted (ext4 offline, before).
          if (!(await isMountPoint(stagingPath))) await mountFilesystem(fsType, loopDevice, stagingPath, use.mountFlags, `volume ${id}`);
        }
      } catch (err) {
        if (await isMountPoint(stagingPath).catch(() => false)) await runCommand('umount', [stagingPath], `unmounting ${stagingPath}`).catch(() => undefined);
        await detachLoops(file).catch(() => undefined);
        throw err;
      }
      await this.#saveVolume({
        ...volume,
        formatted: fsType !== undefined,
        ...(fsType ? { fsType } : {}),
        staging: { path: stagingPath, loopDevice, kind: use.kind, mountFlags: use.mountFlags },
      });
    });
  }

  unstage(id: string, stagingPath: string): Promise<void> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.getVolume(id);
      const published = Object.keys(volume.publishes);
      if (published.length > 0) throw failedPrecondition(`volume ${id} is still published at ${published.join(', ')}; unpublish it first`);
      if (volume.staging && volume.staging.path !== stagingPath) {
        throw failedPrecondition(`volume ${id} is staged at ${volume.staging.path}, not ${stagingPath}`);
      }
      const file = this.#file(id);
      if (await isMountPoint(stagingPath)) await runCommand('umount', [stagingPath], `unmounting volume ${id} from ${stagingPath}`);
      // Detaching a loop device that a filesystem is still mounted from (in a container's
      // mount namespace, say) only marks it to go when released: it would stay attached,
      // and written to, after unstage said it was done. Wait for it; if it stays held,
      // mount it back and say so (the CO retries NodeUnstageVolume).
      for (const device of await loopDevicesOf(file)) {
        if (await waitUntilReleased(device, RELEASE_WAIT_MS)) continue;
        if (volume.staging?.kind === 'mount' && !(await isMountPoint(stagingPath))) {
          await mountFilesystem(volume.fsType ?? DEFAULT_FS_TYPE, device, stagingPath, volume.staging.mountFlags, `volume ${id}`, false);
        }
        throw failedPrecondition(`volume ${id}: ${device} is still in use after ${RELEASE_WAIT_MS / 1000} s (mounted in another mount namespace: a container still running with it?); unstage again once it is released`);
      }
      await detachLoops(file);
      if (volume.staging) {
        const { staging: _, ...rest } = volume;
        await this.#saveVolume(rest);
      }
    });
  }

  publish(id: string, stagingPath: string, target: string, use: VolumeUse, readonly: boolean): Promise<void> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.getVolume(id);
      const ro = readonly || use.mode === 'single-node-reader-only';
      const existing = volume.publishes[target];
      if (existing) {
        if (existing.readonly === ro && existing.kind === use.kind) return;
        throw alreadyExists(`volume ${id} is already published at ${target} ${existing.readonly ? 'read-only' : 'read-write'} as a ${existing.kind} volume`);
      }
      const others = Object.entries(volume.publishes);
      const singleWriter = (mode: AccessMode) => mode === 'single-node-single-writer';
      if (others.length > 0 && (singleWriter(use.mode) || others.some(([, p]) => singleWriter(p.mode)))) {
        throw failedPrecondition(`volume ${id} is single-node-single-writer and already published at ${others[0]![0]}`);
      }
      if (!volume.staging) throw failedPrecondition(`volume ${id} is not staged; call NodeStageVolume first`);
      if (volume.staging.path !== stagingPath) throw failedPrecondition(`volume ${id} is staged at ${volume.staging.path}, not ${stagingPath}`);
      if (volume.staging.kind !== use.kind) throw failedPrecondition(`volume ${id} is staged as a ${volume.staging.kind} volume, not ${use.kind}`);
      let source: string;
      if (use.kind === 'mount') {
        await mkdir(target, { recursive: true });
        source = stagingPath;
      } else {
        await makeFileAt(target);
        source = volume.staging.loopDevice;
      }
      if (!(await isMountPoint(target))) {
        await runCommand('mount', ['--bind', source, target], `publishing volume ${id} at ${target}`);
        if (ro) {
          try {
            await runCommand('mount', ['-o', 'remount,bind,ro', target], `making ${target} read-only`);
          } catch (err) {
            await runCommand('umount', [target], `unmounting ${target}`).catch(() => undefined);
            throw err;
          }
        }
      }
      await this.#saveVolume({ ...volume, publishes: { ...volume.publishes, [target]: { readonly: ro, kind: use.kind, mode: use.mode } } });
    });
  }

  unpublish(id: string, target: string): Promise<void> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.getVolume(id);
      if (await isMountPoint(target)) await runCommand('umount', [target], `unpublishing volume ${id} from ${target}`);
      await removeTarget(target);
      if (volume.publishes[target]) {
        const { [target]: _, ...rest } = volume.publishes;
        await this.#saveVolume({ ...volume, publishes: rest });
      }
    });
  }

  async stats(id: string, path: string): Promise<VolumeStats> {
    const volume = this.getVolume(id);
    let info;
    try {
      info = await stat(path);
    } catch {
      throw notFound('volume path', path);
    }
    const staged = volume.staging;
    if (info.isBlockDevice() || info.isFile() || staged?.kind === 'block') {
      const total = staged ? await blockDeviceSize(staged.loopDevice) : volume.capacityBytes;
      return {
        kind: 'block',
        bytes: { total, available: 0, used: 0 },
        abnormal: !staged,
        message: staged ? `attached at ${staged.loopDevice}` : `volume ${id} is not staged`,
      };
    }
    const fs = await statfs(path);
    const mounted = await isMountPoint(path);
    return {
      kind: 'mount',
      bytes: { total: fs.blocks * fs.bsize, available: fs.bavail * fs.bsize, used: (fs.blocks - fs.bfree) * fs.bsize },
      inodes: { total: fs.files, available: fs.ffree, used: fs.files - fs.ffree },
      abnormal: !mounted || !staged,
      message: !staged ? `volume ${id} is not staged` : mounted ? 'mounted' : `${path} is not a mount point`,
    };
  }

  /** Makes the staged loop device see the grown file and grows the filesystem online. */
  nodeExpand(id: string, path: string): Promise<number> {
    return this.#locks.lock(key.volume(id), async () => {
      const volume = this.getVolume(id);
      try {
        await stat(path);
      } catch {
        throw notFound('volume path', path);
      }
      if (!volume.staging) throw failedPrecondition(`volume ${id} is not staged on this node`);
      const { loopDevice, kind, path: stagingPath, mountFlags } = volume.staging;
      await refreshLoopSize(loopDevice);
      if (kind === 'mount') {
        const fsType = volume.fsType ?? DEFAULT_FS_TYPE;
        try {
          await growMounted(fsType, loopDevice, stagingPath);
        } catch (err) {
          if (fsType !== 'ext4') throw err;
          // Online resize (EXT4_IOC_RESIZE_FS) needs CAP_SYS_RESOURCE. Without it, a
          // volume that is staged but published nowhere is grown offline: unmount,
          // check, resize, mount again. A published one cannot be, until it is restaged.
          if (!/Permission denied/.test((err as Error).message)) throw err;
          if (Object.keys(volume.publishes).length > 0) {
            throw failedPrecondition(
              `online resize of volume ${id} was refused (berth-csi lacks CAP_SYS_RESOURCE); it is grown when next staged, or unpublish it and expand again`,
            );
          }
          await runCommand('umount', [stagingPath], `unmounting volume ${id} to grow it offline`);
          // A container that had it published may still hold the filesystem a moment
          // (its mount namespace going): e2fsck refuses a device in use, so wait for it.
          const released = await waitUntilReleased(loopDevice, RELEASE_WAIT_MS);
          // mountFilesystem grows it offline (e2fsck, resize2fs) before mounting again;
          // mounted back at its old size when still in use elsewhere.
          await mountFilesystem(fsType, loopDevice, stagingPath, mountFlags, `volume ${id}`, released);
          if (!released) throw failedPrecondition(`volume ${id}: ${loopDevice} is still in use in another mount namespace; it cannot be grown offline until released`);
        }
      }
      return blockDeviceSize(loopDevice);
    });
  }
}

function sameSource(a: ContentSource | undefined, b: ContentSource | undefined): boolean {
  return a?.kind === b?.kind && a?.id === b?.id;
}

/** A page of records sorted by id; the token is the last id returned. */
function page<T extends { id: string }>(all: T[], idShape: RegExp, maxEntries: number, startingToken: string): Page<T> {
  if (maxEntries < 0) throw invalidArgument('max_entries must not be negative');
  if (startingToken && !idShape.test(startingToken)) throw aborted(`starting_token "${startingToken}" is not one berth-csi gave out`);
  const sorted = all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).filter((r) => !startingToken || r.id > startingToken);
  const entries = maxEntries > 0 ? sorted.slice(0, maxEntries) : sorted;
  const nextToken = entries.length < sorted.length ? entries[entries.length - 1]!.id : '';
  return { entries, nextToken };
}

/** A block volume's target: a file to bind the device onto (an empty directory there is replaced). */
async function makeFileAt(target: string): Promise<void> {
  try {
    const info = await lstat(target);
    if (info.isDirectory()) await rmdir(target);
    else return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(target), { recursive: true });
  await (await open(target, 'a', 0o600)).close();
}

/** Removes what publish made at a target: its directory or file; already gone is fine. */
async function removeTarget(target: string): Promise<void> {
  try {
    const info = await lstat(target);
    if (info.isDirectory()) await rmdir(target);
    else await rm(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
