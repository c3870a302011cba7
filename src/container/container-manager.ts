// Containers from CreateContainer to RemoveContainer: an overlay rootfs on the image's
// snapshots, an OCI bundle, conmon and the runtime handler. berthd learns of exits from
// conmon's exit files, so a container that ended while berthd was down is reported
// with its code after the restart. One record on disk and one object in memory each.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../util/logger.js';
import { BerthError, notFound, invalidArgument, alreadyExists, failedPrecondition } from '../errors.js';
import type { BerthConfig } from '../config/config.js';
import { RecordStore } from '../store/record-store.js';
import { KeyedMutex } from '../util/locks.js';
import { allSettled } from '../util/all-settled.js';
import { containerCgroup, monitorCgroup, parseSystemdCgroup } from '../linux/cgroup-names.js';
import { scopeCommand } from '../linux/systemd-scope.js';
import type { ImageManager } from '../image/image-manager.js';
import type { ImageRecord } from '../image/image-store.js';
import type { PodContainers, SandboxManager } from '../pod/sandbox-manager.js';
import type { PodContext } from '../pod/sandbox-types.js';
import { buildOciSpec, mergeResources, ociResources } from './oci-spec.js';
import { OciRuntime, type ContainerRuntime } from './oci-runtime.js';
import { linuxContainerHost, type ContainerHost } from './container-host.js';
import { resolveUser } from './user.js';
import { seccompFor } from './seccomp.js';
import { Bundles, bundlePaths, type BundleStore } from './bundle.js';
import { ExitWatcher, exitFileNames, exitFileOf, readExit } from './exit-watcher.js';
import { attach, execStream, execSync, type ExecSyncResult } from './exec.js';
import { reopenLog } from './log-reopen.js';
import { applyCdiEdits, cdiEditsFor, loadCdiRegistry, resolveCdiNodes, type CdiContainerEdits, type OciConfigForCdi, type ResolvedCdiNode } from './cdi.js';
import type { AttachRequest, ExecRequest, StreamIO } from '../stream/backends.js';
import type { ContainerRecord, ContainerResources, ContainerSpec, ContainerState } from './container-types.js';
import { noContainerEvents, type ContainerEventPublisher } from '../events/container-events.js';
import { KeyIndex, LabelIndex } from '../util/record-index.js';

export interface ContainerManagerOptions {
  config: BerthConfig;
  /** What containers need of images and pods (the managers; fakes in unit tests). */
  images: Pick<ImageManager, 'get' | 'find' | 'forContainer' | 'chainIds'> & Partial<Pick<ImageManager, 'collectLeftovers'>>;
  pods: Pick<SandboxManager, 'forContainer'>;
  log: Logger;
  conmon?: string;
  /** Where CREATED/STARTED/STOPPED/DELETED are published (GetContainerEvents). */
  events?: ContainerEventPublisher;
  /** Seams for unit tests: host operations, the bundle store, the runtime handlers by name, the wait after SIGKILL. */
  host?: ContainerHost;
  bundles?: BundleStore;
  runtimes?: Record<string, ContainerRuntime>;
  killWaitMs?: number;
}

const KILL_WAIT_MS = 10_000;

export class ContainerManager implements PodContainers {
  readonly #records = new Map<string, ContainerRecord>();
  /** The records by pod and by label pair (the kubelet lists a pod's containers by its uid label). */
  readonly #byPod = new KeyIndex<ContainerRecord>();
  readonly #labels = new LabelIndex<ContainerRecord>((r) => r.spec.labels);
  /** The image snapshots of CreateContainer calls under way: held already. */
  readonly #creating = new Set<{ snapshots: string[] }>();
  readonly #store: RecordStore<ContainerRecord>;
  readonly #locks = new KeyedMutex();
  readonly #names = new Map<string, string>();
  readonly #runtimes = new Map<string, ContainerRuntime>();
  readonly #exitDir: string;
  /** conmon's attach sockets: <attachDir>/<container or exec session id>/attach. */
  readonly #attachDir: string;
  readonly #events: ContainerEventPublisher;
  #exitWatcher: ExitWatcher | undefined;
  /** Waiters of #waitExit, woken when the watcher sees a container's exit file. */
  readonly #exitNoticed = new Map<string, Set<() => void>>();
  /** Each container's config.json as written (never rewritten; read back after a restart), for verbose status. */
  readonly #specTexts = new Map<string, string>();
  readonly #bundles: BundleStore;
  readonly #host: ContainerHost;
  readonly #killWaitMs: number;

  constructor(private readonly options: ContainerManagerOptions) {
    const { config } = options;
    // Atomic, not fsynced: a killed berthd finds every record whole; a host crash ends the
    // containers, their mounts and the state dir's bundles, so a record it loses leaves
    // nothing behind (a bundle on a persistent state dir without a record is removed at start).
    this.#store = new RecordStore(join(config.root, 'containers'), { durable: false });
    this.#bundles = options.bundles ?? new Bundles(config.state);
    this.#host = options.host ?? linuxContainerHost;
    this.#killWaitMs = options.killWaitMs ?? KILL_WAIT_MS;
    this.#exitDir = join(config.state, 'exits');
    this.#attachDir = join(config.state, 'attach');
    this.#events = options.events ?? noContainerEvents;
    for (const [name, handler] of Object.entries(config.runtimes)) {
      this.#runtimes.set(
        name,
        options.runtimes?.[name] ??
          new OciRuntime({ name, path: handler.path, options: handler.options, root: join(config.state, 'runtime', name), conmon: options.conmon ?? '/usr/bin/conmon', cgroupDriver: config.cgroup_driver }),
      );
    }
  }

  async recover(): Promise<void> {
    await mkdir(this.#exitDir, { recursive: true, mode: 0o700 });
    // Watched before the records are read: an exit from here on is seen by the watch or
    // by the record's own read below (the watch ignores ids it has no record of yet).
    this.#watchExits();
    await this.#bundles.prepare();
    const { records, problems } = await this.#store.loadAll();
    for (const problem of problems) this.options.log.error({ problem }, 'skipping unreadable container record');
    for (const record of records) {
      this.#add(record);
      this.#names.set(this.#nameKey(record.podId, record.spec), record.id);
      await this.#refresh(record);
    }
    // Bundles without a record: a crash during CreateContainer. Nothing may stay mounted.
    for (const id of await this.#bundles.ids()) {
      if (this.#records.has(id)) continue;
      this.options.log.warn({ container: id }, 'removing a container bundle that a crash left behind');
      const orphan = { id, bundle: this.#bundles.dirOf(id) };
      // Which handler made it is not known: each forgets it (conmon then exits).
      for (const runtime of this.#runtimes.values()) await runtime.delete(id).catch(() => undefined);
      try {
        await this.#bundles.unmount(orphan);
        await this.#bundles.remove(orphan);
        await rm(exitFileOf(this.#exitDir, id), { force: true });
      } catch (err) {
        this.options.log.error({ container: id, error: (err as Error).message }, 'cannot remove a container bundle left behind; it stays for a later start');
      }
    }
  }

  /** Exits are noticed as conmon writes them (ExitWatcher), each read under the container's lock. */
  #watchExits(): void {
    this.#exitWatcher ??= new ExitWatcher({
      exitDir: this.#exitDir,
      log: this.options.log,
      onExitFile: (id) => {
        this.#exitNoticed.get(id)?.forEach((wake) => wake());
        const record = this.#records.get(id);
        if (!record || record.state === 'exited') return;
        this.#locks
          .lock(id, () => this.#refresh(record))
          .catch((err: Error) => this.options.log.warn({ container: id, error: err.message }, 'cannot read an exit file'));
      },
    });
    this.#exitWatcher.start();
  }

  /** Stops watching for exits (berthd is stopping). */
  close(): void {
    this.#exitWatcher?.close();
  }

  list(): ContainerRecord[] {
    return [...this.#records.values()];
  }

  #add(record: ContainerRecord): void {
    this.#records.set(record.id, record);
    this.#byPod.add(record.podId, record);
    this.#labels.add(record);
  }

  /** The containers that may carry every pair of `selector` (a superset: the caller applies it); all for an empty one. */
  withLabels(selector: Record<string, string>): ContainerRecord[] {
    const candidates = this.#labels.candidates(selector);
    return candidates ? [...candidates] : this.list();
  }

  /** The containers of the pod with this id, or else of those whose id starts so (a prefix: a scan). */
  ofPodOrPrefix(podIdOrPrefix: string): ContainerRecord[] {
    const exact = this.#byPod.get(podIdOrPrefix);
    if (exact.size > 0) return [...exact];
    return this.list().filter((r) => r.podId.startsWith(podIdOrPrefix));
  }

  find(idOrPrefix: string): ContainerRecord | undefined {
    if (!idOrPrefix) return undefined;
    const exact = this.#records.get(idOrPrefix);
    if (exact) return exact;
    const matches = this.list().filter((r) => r.id.startsWith(idOrPrefix));
    if (matches.length > 1) throw invalidArgument(`container id prefix "${idOrPrefix}" is ambiguous`);
    return matches[0];
  }

  /**
   * A container with its state up to date. While the exit dir is watched, the record is
   * (the watch reads each exit file as conmon writes it, the sweep anything a watch
   * missed): no file is looked at. Without a watch, its exit file is read here.
   */
  async get(idOrPrefix: string): Promise<ContainerRecord> {
    const record = this.find(idOrPrefix);
    if (!record) throw notFound('container', idOrPrefix);
    if (!this.#exitWatcher?.watching) await this.#refresh(record);
    return record;
  }

  /** A container with its exit file read now (the lifecycle calls act on what is on disk, not on a watch's last word). */
  async #getRead(idOrPrefix: string): Promise<ContainerRecord> {
    const record = this.find(idOrPrefix);
    if (!record) throw notFound('container', idOrPrefix);
    await this.#refresh(record);
    return record;
  }

  /**
   * Every container, up to date: from the records while the exit dir is watched (as
   * get); else with one listing of the exit dir (which holds the files of containers that
   * ended, not of those running) instead of a look for each container.
   */
  async listFresh(): Promise<ContainerRecord[]> {
    return this.fresh(this.list());
  }

  /** These containers, up to date (see listFresh): a listing refreshes only the containers it lists. */
  async fresh(records: ContainerRecord[]): Promise<ContainerRecord[]> {
    if (this.#exitWatcher?.watching) return records;
    const ended = new Set(exitFileNames(this.#exitDir));
    for (const record of records) if (record.state !== 'exited' && ended.has(record.id)) await this.#refresh(record);
    return records;
  }

  #nameKey(podId: string, spec: ContainerSpec): string {
    return `${spec.name}_${podId}_${spec.attempt}`;
  }

  /**
   * Creates a container: checks against current state, reserves its name, then named
   * steps — bundle, rootfs, OCI spec, conmon — each undone if a later one fails.
   */
  async create(podId: string, spec: ContainerSpec): Promise<string> {
    const pod = this.options.pods.forContainer(podId);
    const key = this.#nameKey(pod.id, spec);
    const taken = this.#names.get(key);
    if (taken) throw alreadyExists(`container name "${key}" is reserved for container ${taken}`);
    // A checkpoint archive as the image is a restore (as CRI-O does it).
    if (isAbsolute(spec.image) && (await stat(spec.image).then((s) => s.isFile(), () => false))) throw await this.#checkpointUnsupported(`restoring from checkpoint archive ${spec.image}`);
    const image = this.options.images.get(spec.image);
    const runtime = this.#runtimes.get(pod.runtimeHandler);
    if (!runtime) throw failedPrecondition(`runtime handler "${pod.runtimeHandler}" is not configured`);
    // Image volumes: the image must be here (pulled), as for the container's own.
    const mounts = spec.mounts.map((m) => (m.image ? { ...m, image: { ...m.image, imageId: this.options.images.get(m.image.image).id } } : m));
    // The snapshots are held from the moment the images are looked up: a RemoveImage
    // meanwhile removes the image record, never what the container is being made of.
    const snapshots = [...new Set([image, ...mounts.flatMap((m) => (m.image ? [this.options.images.get(m.image.imageId)] : []))].flatMap((i) => this.options.images.chainIds(i)))];
    const hold = { snapshots };
    this.#creating.add(hold);
    try {
      await this.#host.prepareMountSources(mounts.filter((m) => !m.image));
      // CDI devices: an unknown one is refused before anything is made.
      const cdi = await this.#cdiFor(spec);
      // Reserved before anything is awaited: a retry overlapping this call must see it.
      const id = randomBytes(32).toString('hex');
      this.#names.set(key, id);
      const record = this.#newRecord(id, pod, { ...spec, imageId: image.id, mounts }, runtime.options.name);
      record.snapshots = snapshots;
      try {
        await this.#writeBundle(record, pod, image, cdi);
        await this.#startMonitor(record, runtime);
        this.#add(record);
        this.#events.publish('created', id, pod.id);
        this.options.log.info({ container: id, pod: pod.id, name: spec.name }, 'container created');
        return id;
      } catch (err) {
        this.#names.delete(key);
        await this.#undoCreate(record, runtime);
        throw err;
      }
    } finally {
      this.#creating.delete(hold);
    }
  }

  /**
   * CheckpointContainer: the container must exist and run, and CRIU must work on this
   * host. Where `criu check` fails (Debian's criu 3.17.1 on kernel 6.18: its vDSO
   * parser), the answer is Unimplemented with what criu said, so the kubelet reports
   * checkpointing as unsupported; writing the archive itself (runc checkpoint into CRI-O's
   * layout) is not built, since no host berth runs on here could test it.
   */
  async checkpoint(idOrPrefix: string, location: string): Promise<void> {
    const record = await this.#getRead(idOrPrefix);
    if (record.state !== 'running') throw failedPrecondition(`container ${record.id} is ${record.state}: only a running container can be checkpointed`);
    if (!isAbsolute(location)) throw invalidArgument(`checkpoint location "${location}" must be an absolute path of the archive to write`);
    throw await this.#checkpointUnsupported('checkpointing');
  }

  async #checkpointUnsupported(what: string): Promise<BerthError> {
    const criu = await this.#host.criu();
    if (!criu.usable) return new BerthError('Unimplemented', `${what} needs CRIU, which does not work on this host: ${criu.detail}`);
    return new BerthError('Unimplemented', `${what} (runc checkpoint/restore into CRI-O's archive layout) is not implemented by berth yet; criu check passes here`);
  }

  /**
   * The image snapshots containers hold (ImageManager.holdSnapshots): those of every
   * container that exists or is being created, whatever became of its image.
   */
  heldSnapshots(): string[] {
    const held = new Set<string>();
    for (const record of this.#records.values()) {
      for (const chain of record.snapshots ?? this.#imageChains(record.spec.imageId)) held.add(chain);
    }
    for (const creating of this.#creating) for (const chain of creating.snapshots) held.add(chain);
    return [...held];
  }

  #imageChains(imageId: string): string[] {
    const image = this.options.images.find(imageId);
    return image ? this.options.images.chainIds(image) : [];
  }

  #newRecord(id: string, pod: PodContext, spec: ContainerSpec, runtime: string): ContainerRecord {
    const bundle = this.#bundles.dirOf(id);
    return {
      id,
      podId: pod.id,
      spec,
      state: 'created',
      createdAt: nowNanos(),
      startedAt: '0',
      finishedAt: '0',
      exitCode: 0,
      reason: '',
      message: '',
      logFile: pod.logDirectory && spec.logPath ? join(pod.logDirectory, spec.logPath) : bundlePaths(bundle).consoleLog,
      bundle,
      runtime,
      pid: 0,
      cgroupsPath: containerCgroup(pod.cgroupParent, id, this.options.config.cgroup_driver),
    };
  }

  /** The CDI devices' edits and device nodes; InvalidArgument for an unknown device. */
  async #cdiFor(spec: ContainerSpec): Promise<{ edits: CdiContainerEdits[]; nodes: ResolvedCdiNode[] } | undefined> {
    const names = spec.cdiDevices ?? [];
    if (names.length === 0) return undefined;
    const edits = cdiEditsFor(await loadCdiRegistry(this.options.config.cdi_spec_dirs), names);
    return { edits, nodes: await resolveCdiNodes(edits) };
  }

  /** The bundle with its rootfs mounted, and the OCI spec written into it. */
  async #writeBundle(record: ContainerRecord, pod: PodContext, image: ImageRecord, cdi?: { edits: CdiContainerEdits[]; nodes: ResolvedCdiNode[] }): Promise<void> {
    const { id, spec } = record;
    // Independent steps run side by side; each group settles whole before a failure is
    // thrown, so the undo never races a step still mounting.
    const [pidNamespace, devices, paths, { lowerDirs, config: imageConfig }] = await allSettled([
      this.#pidNamespace(pod, spec),
      this.#host.devices(spec),
      this.#bundles.create(record.bundle),
      this.options.images.forContainer(image),
    ] as const);
    // The rootfs mount (a child process) runs beside the rest; only the user needs it (its /etc/passwd).
    const mountedWithUser = this.#bundles.mountRootfs(record.bundle, lowerDirs, pod.userns).then(async (rootfs) => ({ rootfs, user: await resolveUser(rootfs, { ...spec, imageUser: image.user }) }));
    const [{ rootfs, user }, seccomp, mounts, minOomScoreAdj, hostCapabilities, hugetlb] = await allSettled([
      mountedWithUser,
      seccompFor(spec.seccomp, spec.privileged),
      this.#bundles.bindSources(id, spec.mounts, {
        isDirectory: (path) => this.#host.isDirectory(path),
        imageLowerDirs: async (imageId) => (await this.options.images.forContainer(this.options.images.get(imageId))).lowerDirs,
      }),
      this.#host.ownOomScoreAdj(),
      this.#host.hostCapabilities(),
      this.#host.hugetlbAvailable(),
    ] as const);
    const oci = buildOciSpec({ id, spec, pod, image: imageConfig, user, rootfs, cgroupsPath: record.cgroupsPath, minOomScoreAdj, seccomp, devices, pidNamespace, mounts, hostCapabilities, hugetlb });
    if (cdi) applyCdiEdits(oci as unknown as OciConfigForCdi, cdi.edits, cdi.nodes);
    if (!spec.stopSignal && imageConfig.StopSignal) record.spec.stopSignal = imageConfig.StopSignal;
    const text = JSON.stringify(oci);
    // A small file in the state dir: written synchronously (three thread-pool round trips otherwise).
    writeFileSync(paths.config, text);
    this.#specTexts.set(id, text);
  }

  /** conmon creates the container under the runtime handler, then leaves berthd's cgroup; the record is written. */
  async #startMonitor(record: ContainerRecord, runtime: ContainerRuntime): Promise<void> {
    const { id, spec, bundle, logFile } = record;
    mkdirSync(dirname(logFile), { recursive: true });
    // With the systemd driver conmon starts in a scope of its own (berth-conmon-ID.scope in the pod's slice).
    const monitor = this.#monitorCgroup(record);
    const monitorPrefix = parseSystemdCgroup(monitor) ? scopeCommand(monitor) : undefined;
    // conmon leaves berthd's cgroup while the runtime creates the container (the move
    // took ~5 ms after it here); before the record either way: a record on disk names a
    // container that survives berthd.
    const monitorStarted = monitorPrefix ? undefined : () => this.#moveMonitor(record);
    record.pid = await runtime.create({ id, bundle, logFile, exitDir: this.#exitDir, persistDir: bundle, socketDir: this.#attachDir, terminal: spec.tty, stdin: spec.stdin, leaveStdinOpen: !spec.stdinOnce, monitorPrefix, monitorStarted });
    // The container's mount namespace holds its own copies of the recursive read-only
    // trees and image volumes now. The host's go at once, so nothing of berth's keeps a
    // source busy: its owner can unmount what is below it and remove it while the
    // container runs, as with a runtime's own recursive read-only mounts.
    await this.#bundles.unmountTrees(id);
    await this.#store.put(id, record);
  }

  /** Undoes whatever a failed create made (each step is idempotent). */
  async #undoCreate(record: ContainerRecord, runtime: ContainerRuntime): Promise<void> {
    this.#specTexts.delete(record.id);
    await runtime.delete(record.id).catch(() => undefined);
    await this.#bundles.unmount(record).catch(() => undefined);
    await this.#bundles.remove(record).catch((cleanup: Error) => this.options.log.error({ container: record.id, error: cleanup.message }, 'cannot clean up after a failed create'));
    await this.#host.removeLeafCgroup(this.#monitorCgroup(record)).catch(() => undefined);
  }

  async start(idOrPrefix: string): Promise<void> {
    const record = await this.#getRead(idOrPrefix);
    await this.#locks.lock(record.id, async () => {
      if (record.state !== 'created') throw failedPrecondition(`container ${record.id} is ${record.state}, not created`);
      // Taken before start: a short-lived process can exit before `start` returns.
      const startedAt = nowNanos();
      await this.#runtime(record).start(record.id);
      record.startedAt = startedAt;
      // The exit file's mtime is the kernel's coarse clock (a few ms behind): a process
      // that ended within ms of its start would seem to end before it started.
      if ((record.state as ContainerState) === 'exited' && BigInt(record.finishedAt) < BigInt(startedAt)) record.finishedAt = startedAt;
      // A status read meanwhile may already have seen the exit file.
      if (record.state === 'created') record.state = 'running';
      this.#events.publish('started', record.id, record.podId);
      await this.#refresh(record);
      await this.#store.put(record.id, record);
    });
  }

  /** SIGTERM (or the stop signal), SIGKILL after the timeout. Idempotent. */
  async stop(idOrPrefix: string, timeoutSeconds: number): Promise<void> {
    const record = this.find(idOrPrefix);
    // Idempotent, as the CRI asks (and critest checks): a container that is gone is stopped.
    if (!record) return;
    await this.#locks.lock(record.id, async () => {
      await this.#refresh(record);
      if (record.state === 'exited') return;
      const runtime = this.#runtime(record);
      if (record.state === 'running' && timeoutSeconds > 0) {
        await runtime.kill(record.id, record.spec.stopSignal || 'SIGTERM');
        if (await this.#waitExit(record, timeoutSeconds * 1000)) return;
      }
      await runtime.kill(record.id, 'SIGKILL');
      if (!(await this.#waitExit(record, this.#killWaitMs)) && record.state === 'created') {
        // Never started: nothing will exit, the runtime just drops it.
        await runtime.delete(record.id);
        this.#markExited(record, 137, 'Error', 'stopped before it started');
        await this.#store.put(record.id, record);
      }
    });
  }

  /** Removes a container, killing it if it runs. Idempotent. */
  async remove(idOrPrefix: string): Promise<void> {
    const record = this.find(idOrPrefix);
    if (!record) return;
    await this.stop(record.id, 0);
    await this.#locks.lock(record.id, async () => {
      // The container has exited: the runtime's state and berthd's rootfs mount are
      // independent of each other, and so are the bundle, exit file and conmon's cgroup.
      // The record goes last, so a crash before it leaves a record whose removal repeats.
      const runtime = this.#runtime(record);
      await allSettled([runtime.delete(record.id), this.#bundles.unmount(record)] as const);
      await allSettled([
        this.#bundles.remove(record),
        rm(exitFileOf(this.#exitDir, record.id), { force: true }),
        this.#host.removeLeafCgroup(this.#monitorCgroup(record)).catch((err: Error) => this.options.log.warn({ container: record.id, error: err.message }, "cannot remove conmon's cgroup")),
      ] as const);
      await this.#store.delete(record.id);
      const stored = this.#records.get(record.id);
      this.#records.delete(record.id);
      if (stored) {
        this.#byPod.delete(stored.podId, stored);
        this.#labels.delete(stored);
      }
      this.#specTexts.delete(record.id);
      this.#names.delete(this.#nameKey(record.podId, record.spec));
      this.#events.publish('deleted', record.id, record.podId);
      this.options.log.info({ container: record.id }, 'container removed');
    });
    // The last holder of a removed image's snapshots lets them go.
    if (!this.options.images.find(record.spec.imageId)) {
      await this.options.images.collectLeftovers?.().catch((err: Error) => this.options.log.warn({ container: record.id, error: err.message }, "cannot collect a removed image's snapshots"));
    }
  }

  /**
   * New resources for a running or created container, recorded for status. What the
   * request leaves unset (0 or empty) keeps its current value.
   */
  async updateResources(idOrPrefix: string, resources: ContainerResources): Promise<void> {
    const record = await this.#getRead(idOrPrefix);
    await this.#locks.lock(record.id, async () => {
      if (record.state === 'exited') throw failedPrecondition(`container ${record.id} has exited`);
      // `runc update` does not apply hugepage limits: refused rather than recorded as applied.
      if (resources.hugepageLimits.length > 0 && JSON.stringify(resources.hugepageLimits) !== JSON.stringify(record.spec.hugepageLimits ?? [])) {
        throw invalidArgument(`container ${record.id}: hugepage limits cannot be changed after creation`);
      }
      const merged = mergeResources(record.spec, resources);
      await this.#runtime(record).update(record.id, ociResources(merged, { hugetlb: await this.#host.hugetlbAvailable() }));
      Object.assign(record.spec, merged);
      await this.#store.put(record.id, record);
    });
  }

  /** The PID namespace a container gets: the pod's, its own, the host's, or a target container's. */
  async #pidNamespace(pod: PodContext, spec: ContainerSpec): Promise<{ path?: string } | undefined> {
    const mode = spec.pidMode ?? pod.pidMode;
    switch (mode) {
      case 'node':
        return undefined;
      case 'container':
        return {};
      case 'pod':
        if (!pod.namespaces.pid) throw failedPrecondition(`pod sandbox ${pod.id} has no shared PID namespace (its PID mode is ${pod.pidMode.toUpperCase()})`);
        return { path: pod.namespaces.pid };
      case 'target': {
        if (!spec.pidTargetId) throw invalidArgument('PID namespace mode TARGET needs a target_id');
        const target = await this.#getRead(spec.pidTargetId);
        if (target.podId !== pod.id) throw invalidArgument(`target container ${target.id} is not in pod ${pod.id}`);
        if (target.state !== 'running') throw failedPrecondition(`target container ${target.id} is not running`);
        return { path: `/proc/${target.pid}/ns/pid` };
      }
    }
  }

  /**
   * Asks conmon to reopen the log file (after the kubelet rotated it). Never waits on a
   * conmon that is gone: the control fifo is opened without blocking.
   */
  async reopenLog(idOrPrefix: string): Promise<void> {
    const record = await this.#getRead(idOrPrefix);
    if (record.state !== 'running') throw failedPrecondition(`container ${record.id} is not running; its log cannot be reopened`);
    await reopenLog(record.id, bundlePaths(record.bundle).ctl, record.logFile);
  }

  /** Runs a command in a running container (ExecSync). */
  async execSync(idOrPrefix: string, command: string[], timeoutSeconds: number): Promise<ExecSyncResult> {
    const record = await this.running(idOrPrefix);
    return execSync(this.#runtime(record), record, command, timeoutSeconds);
  }

  /** A running container, or FailedPrecondition (for exec and attach). */
  async running(idOrPrefix: string): Promise<ContainerRecord> {
    const record = await this.#getRead(idOrPrefix);
    if (record.state !== 'running') throw failedPrecondition(`container ${record.id} is not running (${record.state})`);
    return record;
  }

  /** A streaming exec (the Exec URL's session); resolves with the command's exit code. */
  async execStream(request: ExecRequest, io: StreamIO): Promise<number> {
    const record = await this.running(request.containerId);
    return execStream(this.#runtime(record), record, request, io, {
      conmon: this.options.conmon ?? '/usr/bin/conmon',
      sessionRoot: join(this.options.config.state, 'exec'),
      socketDir: this.#attachDir,
      processOf: async () => ((await this.runtimeSpecOf(record)) as { process?: Record<string, unknown> } | null)?.process,
    });
  }

  /** Attaches to a running container's stdio (through conmon) until it exits or the client leaves. */
  async attach(request: AttachRequest, io: StreamIO): Promise<void> {
    await attach(this.#attachDir, await this.running(request.containerId), request, io);
  }

  /**
   * The image reference ContainerStatus reports: the image's first repo digest when it
   * has one (what the kubelet shows as a pod's imageID), else its id — as containerd does.
   */
  imageRefOf(record: ContainerRecord): string {
    return this.options.images.find(record.spec.imageId)?.repoDigests[0] ?? record.spec.imageId;
  }

  /** The OCI config.json the container was created from (for verbose status). */
  async runtimeSpecOf(record: ContainerRecord): Promise<unknown> {
    let text = this.#specTexts.get(record.id);
    if (text === undefined) {
      text = await readFile(bundlePaths(record.bundle).config, 'utf8').catch(() => undefined);
      if (text === undefined) return null;
      if (this.#records.has(record.id)) this.#specTexts.set(record.id, text);
    }
    return JSON.parse(text);
  }

  /** Containers of a pod (for pod stop and remove). */
  ofPod(podId: string): ContainerRecord[] {
    return [...this.#byPod.get(podId)];
  }

  /** PodContainers: stopping a pod stops its containers at once (no grace period). */
  async stopPodContainers(podId: string): Promise<void> {
    for (const c of this.ofPod(podId)) await this.stop(c.id, 0);
  }

  /** PodContainers: removing a pod removes its containers. */
  async removePodContainers(podId: string): Promise<void> {
    for (const c of this.ofPod(podId)) await this.remove(c.id);
  }

  #runtime(record: ContainerRecord): ContainerRuntime {
    const runtime = this.#runtimes.get(record.runtime);
    if (!runtime) throw failedPrecondition(`runtime handler "${record.runtime}" is no longer configured`);
    return runtime;
  }

  /** Reads conmon's exit file: the container's code, written even while berthd was down. */
  async #refresh(record: ContainerRecord): Promise<void> {
    if (record.state === 'exited') return;
    const exit = await readExit(exitFileOf(this.#exitDir, record.id), bundlePaths(record.bundle).oom);
    // Another reader may have got here first while this one read files.
    if (!exit || (record.state as ContainerState) === 'exited') return;
    this.#markExited(record, exit.code, exit.oomKilled ? 'OOMKilled' : exit.code === 0 ? 'Completed' : 'Error', '', exit.finishedAt);
    await this.#store.put(record.id, record);
    // Removed while this was written: the record must not come back at the next start.
    if (!this.#records.has(record.id)) await this.#store.delete(record.id);
  }

  /** The one way into `exited`; publishes STOPPED. */
  #markExited(record: ContainerRecord, code: number, reason: string, message: string, finishedAt = nowNanos()): void {
    if (record.state === 'exited') return;
    record.state = 'exited';
    record.exitCode = code;
    record.reason = reason;
    record.message = message;
    // The exit file's mtime is the kernel's coarse clock: never before the start taken by Date.now().
    record.finishedAt = record.startedAt !== '0' && BigInt(finishedAt) < BigInt(record.startedAt) ? record.startedAt : finishedAt;
    this.#events.publish('stopped', record.id, record.podId);
  }

  async #waitExit(record: ContainerRecord, ms: number): Promise<boolean> {
    const started = Date.now();
    // Woken as soon as the exit watcher sees the exit file; the polling stays, for a
    // watch that misses it.
    let wake: () => void = () => undefined;
    const waiters = this.#exitNoticed.get(record.id) ?? new Set<() => void>();
    this.#exitNoticed.set(record.id, waiters);
    try {
      while (Date.now() < started + ms) {
        const noticed = new Promise<void>((resolve) => (wake = resolve));
        waiters.add(wake);
        await this.#refresh(record);
        if (record.state === 'exited') return true;
        // A killed process is usually gone within milliseconds: look often at first.
        const pause = new AbortController();
        await Promise.race([noticed, sleep(Date.now() - started < 500 ? 5 : 50, undefined, { signal: pause.signal }).catch(() => undefined)]);
        pause.abort();
        waiters.delete(wake);
      }
      return false;
    } finally {
      waiters.delete(wake);
      if (waiters.size === 0 && this.#exitNoticed.get(record.id) === waiters) this.#exitNoticed.delete(record.id);
    }
  }

  /** A container with an image volume of this image (RemoveImage refuses to remove it under one). */
  imageVolumeUser(imageId: string): string | undefined {
    return this.list().find((r) => r.spec.mounts.some((m) => m.image?.imageId === imageId))?.id;
  }

  /** conmon's own cgroup, beside the container's under the pod's. */
  #monitorCgroup(record: Pick<ContainerRecord, 'id' | 'cgroupsPath'>): string {
    return monitorCgroup(record.cgroupsPath, record.id);
  }

  /** Moves conmon out of berthd's cgroup, so whatever stops berthd leaves it running. */
  async #moveMonitor(record: ContainerRecord): Promise<void> {
    try {
      const pid = Number((await readFile(bundlePaths(record.bundle).conmonPid, 'utf8')).trim());
      if (pid > 0) await this.#host.moveIntoCgroup(this.#monitorCgroup(record), pid);
    } catch (err) {
      this.options.log.warn({ container: record.id, error: (err as Error).message }, "conmon stays in berthd's cgroup");
    }
  }
}


function nowNanos(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

export type { ContainerState };
