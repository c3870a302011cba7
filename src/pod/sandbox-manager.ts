// Pod sandboxes from RunPodSandbox to RemovePodSandbox: pinned namespaces, CNI, the
// pod's files and cgroup parent, each step undone if a later one fails. Every pod has
// one record on disk (written before any resource exists, so recovery can undo a crash
// mid-way) and one object in memory; transitions of one pod run one at a time.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { notFound, invalidArgument, alreadyExists, failedPrecondition, internal } from '../errors.js';
import type { CgroupDriver } from '../config/config.js';
import { RecordStore } from '../store/record-store.js';
import { KeyedMutex } from '../util/locks.js';
import { allSettled } from '../util/all-settled.js';
import { mapLimit } from '../util/map-limit.js';
import { podBandwidth } from '../util/quantity.js';
import { cgroupParentPath } from '../linux/cgroups.js';
import { podInitCgroup } from '../linux/cgroup-names.js';
import { scopeCommand } from '../linux/systemd-scope.js';
import { podLimits, type CgroupLimits } from '../linux/cgroup-limits.js';
import { namespaceFiles } from '../linux/namespaces.js';
import { trashDirOf } from '../linux/trash.js';
import type { CniAttachment, CniManager } from '../network/cni.js';
import { podFilePaths } from './pod-files.js';
import { linuxPodHost, type PodHost } from './pod-host.js';
import type { InitHandle } from '../linux/pid-namespace.js';
import { LabelIndex } from '../util/record-index.js';
import type { PodContext, SandboxRecord, SandboxSpec } from './sandbox-types.js';
import { noContainerEvents, type ContainerEventPublisher } from '../events/container-events.js';

export interface SandboxManagerOptions {
  root: string;
  state: string;
  cgroupDriver: CgroupDriver;
  /** The pod network (CniManager; a fake in unit tests). */
  cni: Pick<CniManager, 'network' | 'add' | 'del' | 'cachedAttachment'> & Partial<Pick<CniManager, 'cachedAttachments'>>;
  log: Logger;
  /** Host operations (linuxPodHost unless a test gives fakes). */
  host?: PodHost;
  /** The init of pods that share one PID namespace. */
  catatonit?: string;
  /** Where the pod's own CREATED/STARTED/STOPPED/DELETED events go (its id as container id). */
  events?: ContainerEventPublisher;
}

/** How a pod stops and removes its containers: the container box implements it. */
export interface PodContainers {
  stopPodContainers(podId: string): Promise<void>;
  removePodContainers(podId: string): Promise<void>;
}

interface Reservation {
  id: string;
  /** A RunPodSandbox caller got this id; false while nobody has (the caller gave up). */
  claimed: boolean;
  creating?: Promise<void>;
}

const POD_INTERFACE = 'eth0';
/** The bandwidth plugin needs a burst with a rate; containerd uses "no limit" too. */
const UNLIMITED_BURST = 2 ** 31 - 1;

export class SandboxManager {
  readonly #records = new Map<string, SandboxRecord>();
  /** The records by label pair (the kubelet lists a pod's sandboxes by its uid label). */
  readonly #labels = new LabelIndex<SandboxRecord>((r) => r.spec.labels);
  readonly #store: RecordStore<SandboxRecord>;
  readonly #reservations = new Map<string, Reservation>();
  readonly #locks = new KeyedMutex();
  readonly #pinDir: string;
  /** Removed pod dirs go here, deleted in the background (the container manager empties it at start-up). */
  readonly #trash: string;
  /** Where pod PID namespace inits run (chrooted): catatonit alone. */
  readonly #infraRoot: string;
  #containers: PodContainers | undefined;
  readonly #host: PodHost;
  /** Each ready pod's init, held open since it was last found in the pod's PID namespace (holdInit). */
  readonly #inits = new Map<string, InitHandle>();

  constructor(private readonly options: SandboxManagerOptions) {
    // Atomic, not fsynced: a killed berthd finds every record whole; a host crash ends
    // every pod's namespaces, processes and cgroups, so a record it loses leaves nothing.
    this.#store = new RecordStore(join(options.root, 'pods'), { durable: false });
    this.#pinDir = join(options.state, 'ns');
    this.#trash = trashDirOf(options.state);
    this.#infraRoot = join(options.state, 'infra');
    this.#host = options.host ?? linuxPodHost;
  }

  /**
   * The containers of pods, set once when the container manager exists (it needs this
   * manager first). A pod is never stopped or removed without them: no silent no-op.
   */
  attachContainers(containers: PodContainers): void {
    if (this.#containers) throw internal('the sandbox manager has its containers already');
    this.#containers = containers;
  }

  get #podContainers(): PodContainers {
    if (!this.#containers) throw internal('the sandbox manager was given no containers (attachContainers)');
    return this.#containers;
  }

  /** Loads pods; undoes creations a crash interrupted; frees namespaces nobody owns. */
  async recover(): Promise<void> {
    await this.#host.preparePrivateDir(this.#pinDir);
    await this.#host.prepareInfraRoot(this.#infraRoot, this.options.catatonit ?? '/usr/bin/catatonit');
    const { records, problems } = await this.#store.loadAll();
    for (const problem of problems) this.options.log.error({ problem }, 'skipping unreadable pod record');
    for (const record of records) {
      // Older berthd kept the request's raw CRI config in the record; nothing reads it now.
      delete (record as SandboxRecord & { criConfig?: unknown }).criConfig;
      this.#add(record);
      if (record.state === 'creating') {
        this.options.log.warn({ pod: record.id }, 'undoing a pod creation that a crash interrupted');
        await this.#teardown(record, true).catch((err: Error) => this.options.log.error({ pod: record.id, error: err.message }, 'undo failed'));
        await this.#forget(record);
        continue;
      }
      await this.#checkAlive(record, true);
      // A pod from before berth gave pods their own /dev/shm gets it now (idempotent).
      if (record.state === 'ready' && record.ipcns) {
        await this.#host.mountPodShm(record.podDir).catch((err: Error) => this.options.log.warn({ pod: record.id, error: err.message }, "cannot mount the pod's /dev/shm"));
      }
      this.#reservations.set(reservationKey(record.spec), { id: record.id, claimed: true });
    }
    await this.#releaseOrphanAttachments();
    // Pins without a pod: a crash between pinning and recording (or a removed record).
    const owned = new Set([...this.#records.values()].flatMap((r) => [r.netns, r.utsns, r.ipcns, r.pidns, r.userns]));
    for (const name of await readdir(this.#pinDir).catch(() => [] as string[])) {
      const file = join(this.#pinDir, name);
      // A PID namespace pin may still have its init running: it goes too.
      if (!owned.has(file)) await (name.endsWith('-pid') ? this.#host.stopPidNamespace(file, undefined) : this.#host.unpinNamespaces([file]));
    }
  }

  /**
   * Network attachments in the CNI cache of no pod: pod records are not fsynced (a host
   * crash ends every pod anyway), so one written just before a host crash can be lost
   * while its attachment's IP reservation (host-local's, on disk) outlived it. DEL with
   * the cached config and result releases it, as the kubelet's StopPodSandbox would.
   */
  async #releaseOrphanAttachments(): Promise<void> {
    const entries = (await this.options.cni.cachedAttachments?.().catch(() => [])) ?? [];
    for (const entry of entries) {
      if (this.#records.has(entry.containerId)) continue;
      this.options.log.warn({ pod: entry.containerId, network: entry.networkName }, 'releasing a network attachment of a pod that has no record');
      const attachment: CniAttachment = { containerId: entry.containerId, netns: entry.netns, ifName: entry.ifName, args: entry.args, capabilityArgs: entry.capabilityArgs };
      await this.options.cni.del(entry.config, attachment).catch((err: Error) => this.options.log.error({ pod: entry.containerId, error: err.message }, 'cannot release a network attachment left behind'));
    }
  }

  /**
   * A ready pod whose namespaces are gone (the host rebooted) or whose init died (as a
   * dead pause container does for containerd) is not ready any more.
   */
  async #checkAlive(record: SandboxRecord, afterRestart = false): Promise<void> {
    if (record.state !== 'ready') return;
    // Pins vanish only with a reboot, which only a restart can follow.
    const netnsGone = afterRestart && record.netns !== undefined && !(await this.#host.isPinned(record.netns));
    const pidInitGone = record.pidns !== undefined && !(await this.#initAlive(record, record.pidns));
    if (!netnsGone && !pidInitGone) return;
    this.#releaseInit(record.id);
    this.options.log.warn({ pod: record.id, netnsGone, pidInitGone }, 'pod sandbox is not ready any more');
    record.state = 'notready';
    this.#events.publish('stopped', record.id, record.id);
    await this.#store.put(record.id, record);
  }

  /**
   * Whether the pod's init still runs in its PID namespace (a zombie does not). Asked on
   * every PodSandboxStatus and for every pod of every listing: once the init was found in
   * the namespace it is held open, and a check is one read of its state (no pid reuse can
   * fool it), or none while the watch of its cgroup reports nothing; the namespace is
   * looked at again only when there is no handle.
   */
  async #initAlive(record: SandboxRecord, pidns: string): Promise<boolean> {
    const held = this.#inits.get(record.id);
    if (held) return held.alive();
    if (!record.pidInit) return false;
    if (!this.#host.holdInit) return this.#host.inPinnedNamespace(record.pidInit, pidns);
    const handle = await this.#host.holdInit(record.pidInit, pidns);
    if (!handle) return false;
    // Another check may have held it meanwhile: one handle a pod.
    const other = this.#inits.get(record.id);
    if (other) {
      handle.close();
      return other.alive();
    }
    // Stopped or removed meanwhile: nothing to hold any more.
    if (record.state !== 'ready' || !this.#records.has(record.id)) {
      handle.close();
      return false;
    }
    this.#inits.set(record.id, handle);
    return true;
  }

  /** True when the pod needs no further look: not ready, no PID namespace of its own, or its held init alive. */
  #knownAlive(record: SandboxRecord): boolean {
    return record.state !== 'ready' || record.pidns === undefined || this.#inits.get(record.id)?.alive() === true;
  }

  #releaseInit(id: string): void {
    this.#inits.get(id)?.close();
    this.#inits.delete(id);
  }

  get #events(): ContainerEventPublisher {
    return this.options.events ?? noContainerEvents;
  }

  /** Pods with their readiness checked (for status and list). */
  listChecked(): Promise<SandboxRecord[]> {
    return this.checked(this.list());
  }

  /** These pods, each with its readiness checked (a listing checks only the pods it lists). */
  async checked(records: SandboxRecord[]): Promise<SandboxRecord[]> {
    // Most pods are answered by their held init's one read, without an await each.
    for (const record of records) if (!this.#knownAlive(record)) await this.#checkAlive(record);
    return records;
  }

  /** The pods that may carry every pair of `selector` (a superset: the caller applies it); all pods for an empty one. */
  withLabels(selector: Record<string, string>): SandboxRecord[] {
    const candidates = this.#labels.candidates(selector);
    if (!candidates) return this.list();
    const out: SandboxRecord[] = [];
    for (const record of candidates) if (record.state !== 'creating') out.push(record);
    return out;
  }

  async getChecked(idOrPrefix: string): Promise<SandboxRecord> {
    const record = this.get(idOrPrefix);
    await this.#checkAlive(record);
    return record;
  }

  list(): SandboxRecord[] {
    const out: SandboxRecord[] = [];
    for (const record of this.#records.values()) if (record.state !== 'creating') out.push(record);
    return out;
  }

  #add(record: SandboxRecord): void {
    this.#records.set(record.id, record);
    this.#labels.add(record);
  }

  /** A pod by id or unique id prefix. */
  find(idOrPrefix: string): SandboxRecord | undefined {
    if (idOrPrefix === '') return undefined;
    const exact = this.#records.get(idOrPrefix);
    if (exact) return exact.state === 'creating' ? undefined : exact;
    const matches = this.list().filter((r) => r.id.startsWith(idOrPrefix));
    if (matches.length > 1) throw invalidArgument(`pod sandbox id prefix "${idOrPrefix}" is ambiguous (${matches.length} pods)`);
    return matches[0];
  }

  get(idOrPrefix: string): SandboxRecord {
    const record = this.find(idOrPrefix);
    if (!record) throw notFound('pod sandbox', idOrPrefix);
    return record;
  }

  /** What a container of a ready pod needs from it; FailedPrecondition when the pod is not ready. */
  forContainer(idOrPrefix: string): PodContext {
    const record = this.get(idOrPrefix);
    if (record.state !== 'ready') throw failedPrecondition(`pod sandbox ${record.id} is not ready`);
    const files = podFilePaths(record.podDir);
    return {
      id: record.id,
      hostname: record.spec.hostname,
      namespaces: { network: record.netns, uts: record.utsns, ipc: record.ipcns, pid: record.pidns, ...(record.userns ? { user: record.userns } : {}) },
      ...(record.userns && record.spec.userns ? { userns: record.spec.userns } : {}),
      pidMode: record.spec.namespaces.pid,
      files: { hostname: files.hostname, hosts: files.hosts, resolvConf: files.resolvConf, ...(record.ipcns ? { shm: files.shm } : {}) },
      cgroupParent: record.cgroupPath,
      sysctls: record.spec.sysctls,
      logDirectory: record.spec.logDirectory,
      runtimeHandler: record.spec.runtimeHandler,
    };
  }

  /**
   * Creates a pod and returns its id. The same metadata again is refused while its pod
   * exists, except as the kubelet's retry: a retry joins a creation still running, or
   * gets the pod whose first caller gave up before the answer came.
   */
  async run(spec: SandboxSpec, signal: AbortSignal): Promise<string> {
    const key = reservationKey(spec);
    const existing = this.#reservations.get(key);
    if (existing) {
      if (existing.creating) {
        await existing.creating;
        existing.claimed = true;
        return existing.id;
      }
      if (!existing.claimed) {
        existing.claimed = true;
        this.options.log.info({ pod: existing.id }, 'a retried RunPodSandbox gets the pod its first attempt made');
        return existing.id;
      }
      throw alreadyExists(`pod sandbox name "${key}" is reserved for pod ${existing.id}; remove it first or use another attempt number`);
    }
    const id = randomBytes(32).toString('hex');
    const reservation: Reservation = { id, claimed: false };
    reservation.creating = this.#locks.lock(id, () => this.#create(id, spec));
    this.#reservations.set(key, reservation);
    try {
      await reservation.creating;
    } catch (err) {
      this.#reservations.delete(key);
      throw err;
    } finally {
      reservation.creating = undefined;
    }
    // A caller that gave up does not learn the id: a retry may claim the pod instead.
    reservation.claimed ||= !signal.aborted;
    return id;
  }

  async #create(id: string, spec: SandboxSpec): Promise<void> {
    const files = namespaceFiles(this.#pinDir, id);
    const ownNetwork = spec.namespaces.network !== 'node';
    const record: SandboxRecord = {
      id,
      spec,
      state: 'creating',
      createdAt: (BigInt(Date.now()) * 1_000_000n).toString(),
      netns: ownNetwork ? files.net : undefined,
      // A pod on the host's network keeps the host's name too (UTS follows the network).
      utsns: ownNetwork ? files.uts : undefined,
      ipcns: spec.namespaces.ipc !== 'node' ? files.ipc : undefined,
      pidns: spec.namespaces.pid === 'pod' ? files.pid : undefined,
      userns: spec.userns ? files.user : undefined,
      podDir: join(this.options.state, 'pods', id),
      cgroupPath: spec.cgroupParent ? cgroupParentPath(this.options.cgroupDriver, spec.cgroupParent) : '',
      cgroupsCreated: [],
    };
    // The network is named in the first record, before anything exists: should berthd die
    // at any step after it, recovery runs DEL (which a netns that is missing or was never
    // attached does not fail) and finds the init by its namespace.
    const list = record.netns ? await this.options.cni.network() : undefined;
    if (list) record.network = { name: list.name, ifName: POD_INTERFACE, ips: [] };
    this.#add(record);
    await this.#store.put(id, record);
    try {
      mkdirSync(record.podDir, { recursive: true, mode: 0o755 });
      // The namespaces and the pod's cgroup parent do not depend on each other. The cgroup
      // parent comes before the init, which gets a cgroup below it. (With the systemd
      // driver the slices are systemd's: it makes them with the first scope in them.)
      const [loopbackUp] = await allSettled([
        this.#host.pinNamespaces({ net: record.netns, uts: record.utsns, ipc: record.ipcns }, spec.hostname, record.userns && spec.userns ? { file: record.userns, ...spec.userns } : undefined),
        (async () => {
          if (record.cgroupPath && this.options.cgroupDriver === 'cgroupfs') record.cgroupsCreated = await this.#host.ensureCgroup(record.cgroupPath);
        })(),
      ] as const);
      // What berth made of the cgroup tree is recorded before the init starts in it (for
      // the kubelet's pods the kubelet made it, and there is nothing to add).
      if (record.cgroupsCreated.length > 0) await this.#store.put(id, record);
      // The network, the PID namespace init and /dev/shm do not depend on each other:
      // all three run at once, and all settle before a failure is undone. The first CNI
      // plugin is what the call waits for: its request reaches the spawning helper first
      // (the rest start a turn of the event loop later, once the ADD has asked for it),
      // so the helper forks it before the others' children.
      const networkAsked = new Promise<void>((resolve) => setImmediate(resolve));
      const steps = [
        async () => {
          if (!record.netns || !list || !record.network) return;
          // `lo` came up with the pins where the spawning helper made them; otherwise the
          // loopback device and the plugins' interface are independent: side by side.
          const netns = record.netns;
          const added = this.options.cni.add(list, this.#attachment(record));
          const [result] = await allSettled([added, loopbackUp ? Promise.resolve() : networkAsked.then(() => this.#host.bringUpLoopback(netns))] as const);
          record.network.ips = (result.ips ?? []).map((ip: { address: string }) => ip.address.split('/')[0]!);
        },
        async () => {
          if (!record.pidns) return;
          await networkAsked;
          const cgroup = this.#initCgroup(record);
          if (this.options.cgroupDriver === 'systemd') {
            record.pidInit = await this.#host.startPidNamespace(record.pidns, this.#infraRoot, record.userns, scopeCommand(cgroup));
          } else {
            record.pidInit = await this.#host.startPidNamespace(record.pidns, this.#infraRoot, record.userns);
            await this.#host.moveIntoCgroup(cgroup, record.pidInit);
          }
        },
        async () => {
          await networkAsked;
          if (record.ipcns) await this.#host.mountPodShm(record.podDir);
        },
      ];
      await mapLimit(steps, steps.length, (step) => step());
      await this.#host.writePodFiles(record.podDir, spec.hostname, record.network?.ips ?? [], spec.dns);
      record.state = 'ready';
      await this.#store.put(id, record);
      this.#events.publish('created', id, id);
      this.#events.publish('started', id, id);
      this.options.log.info({ pod: id, name: `${spec.namespace}/${spec.name}`, ips: record.network?.ips }, 'pod sandbox ready');
    } catch (err) {
      this.options.log.warn({ pod: id, error: (err as Error).message }, 'pod creation failed; undoing it');
      await this.#teardown(record, true).catch((undo: Error) => this.options.log.error({ pod: id, error: undo.message }, 'undo failed'));
      await this.#forget(record);
      throw err;
    }
  }

  /** Stops a pod: network down, namespaces released. Idempotent; a missing pod is fine. */
  stop(idOrPrefix: string): Promise<void> {
    const record = this.find(idOrPrefix);
    if (!record) return Promise.resolve();
    return this.#locks.lock(record.id, async () => {
      await this.#podContainers.stopPodContainers(record.id);
      if (record.state === 'notready' && !record.network && !record.netns && !record.pidns) return;
      await this.#teardown(record, false);
      const wasReady = record.state === 'ready';
      record.state = 'notready';
      await this.#store.put(record.id, record);
      if (wasReady) this.#events.publish('stopped', record.id, record.id);
      this.options.log.info({ pod: record.id }, 'pod sandbox stopped');
    });
  }

  /** Removes a pod (stopping it first). Idempotent; a missing pod is fine. */
  remove(idOrPrefix: string): Promise<void> {
    const record = this.find(idOrPrefix);
    if (!record) return Promise.resolve();
    return this.#locks.lock(record.id, async () => {
      if (!this.#records.has(record.id)) return;
      await this.#podContainers.removePodContainers(record.id);
      await this.#teardown(record, false);
      // Published while the pod can still be read: the event carries its last status.
      if (record.state === 'ready') {
        record.state = 'notready';
        this.#events.publish('stopped', record.id, record.id);
      }
      this.#events.publish('deleted', record.id, record.id);
      await this.#forget(record);
      this.options.log.info({ pod: record.id }, 'pod sandbox removed');
    });
  }

  /**
   * The pod-level resources the kubelet has given the pod (UpdatePodSandboxResources),
   * recorded for status. The kubelet has already resized the pod's cgroup by then; when
   * berth made the cgroup itself (no kubelet, e.g. crictl), berth writes the limits to
   * it: what the containers may use plus the overhead.
   */
  updateResources(idOrPrefix: string, resources: CgroupLimits, overhead: CgroupLimits): Promise<void> {
    const record = this.get(idOrPrefix);
    return this.#locks.lock(record.id, async () => {
      if (!this.#records.has(record.id)) throw notFound('pod sandbox', idOrPrefix);
      const ownsCgroup = record.cgroupPath !== '' && record.cgroupsCreated.some((dir) => dir.endsWith(record.cgroupPath));
      if (ownsCgroup) await this.#host.applyCgroupLimits(record.cgroupPath, podLimits(resources, overhead));
      record.resources = { overhead, resources, appliedToCgroup: ownsCgroup };
      await this.#store.put(record.id, record);
      this.options.log.info({ pod: record.id, appliedToCgroup: ownsCgroup }, 'pod sandbox resources updated');
    });
  }

  /**
   * Releases the network and the namespaces. A failed CNI DEL stops here (the caller
   * retries) unless the netns is already gone: then nothing can be attached to it any
   * more and the pod must not become unremovable.
   */
  async #teardown(record: SandboxRecord, undoing: boolean): Promise<void> {
    // The network and the PID namespace init go down side by side: neither needs the other.
    await mapLimit([() => this.#releaseNetwork(record, undoing), () => this.#stopInit(record)], 2, (step) => step());
    await this.#host.unpinNamespaces([record.netns, record.utsns, record.ipcns, record.userns]);
    record.netns = record.utsns = record.ipcns = record.userns = undefined;
  }

  async #releaseNetwork(record: SandboxRecord, undoing: boolean): Promise<void> {
    if (!record.network) return;
    try {
      // The config the pod was added with, so a changed or removed conf dir cannot
      // keep a pod from being torn down (the most reported CNI teardown failure).
      const cached = await this.options.cni.cachedAttachment(record.network.name, record.id, record.network.ifName);
      const list = cached?.config ?? (await this.options.cni.network());
      await this.options.cni.del(list, this.#attachment(record));
    } catch (err) {
      const netnsAlive = record.netns ? await this.#host.isPinned(record.netns) : false;
      if (netnsAlive && !undoing) throw err;
      this.options.log.warn({ pod: record.id, error: (err as Error).message }, 'CNI DEL failed; the netns is gone, so the pod is torn down anyway');
    }
    record.network = undefined;
  }

  /** The pod's /dev/shm and its PID namespace init (every process of that namespace dies with it). */
  async #stopInit(record: SandboxRecord): Promise<void> {
    await this.#host.unmountPodShm(record.podDir);
    if (!record.pidns) return;
    this.#releaseInit(record.id);
    await this.#host.stopPidNamespace(record.pidns, record.pidInit);
    await this.#host.removeLeafCgroup(this.#initCgroup(record)).catch((err: Error) => this.options.log.warn({ pod: record.id, error: err.message }, "cannot remove the pod init's cgroup"));
    record.pidns = undefined;
    record.pidInit = undefined;
  }

  async #forget(record: SandboxRecord): Promise<void> {
    await this.#host.removeCgroups(record.cgroupsCreated, record.cgroupPath || undefined);
    await this.#host.removeUnmounted([record.podDir], { trash: this.#trash });
    await this.#store.delete(record.id);
    const stored = this.#records.get(record.id);
    this.#records.delete(record.id);
    if (stored) this.#labels.delete(stored);
    this.#releaseInit(record.id);
    const key = reservationKey(record.spec);
    if (this.#reservations.get(key)?.id === record.id) this.#reservations.delete(key);
  }

  #initCgroup(record: SandboxRecord): string {
    return podInitCgroup(record.cgroupPath, record.id, this.options.cgroupDriver);
  }

  #attachment(record: SandboxRecord): CniAttachment {
    const { spec } = record;
    const portMappings = spec.portMappings
      .filter((p) => p.hostPort > 0)
      .map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol, ...(p.hostIp ? { hostIP: p.hostIp } : {}) }));
    // Parsed by the translation; a pod recorded by an older berthd has its annotations only.
    const { ingress, egress } = spec.bandwidth ?? podBandwidth(spec.annotations);
    return {
      containerId: record.id,
      netns: record.netns ?? '',
      ifName: POD_INTERFACE,
      args: [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', spec.namespace],
        ['K8S_POD_NAME', spec.name],
        ['K8S_POD_INFRA_CONTAINER_ID', record.id],
        ['K8S_POD_UID', spec.uid],
      ],
      capabilityArgs: {
        ...(portMappings.length > 0 ? { portMappings } : {}),
        ...(ingress || egress
          ? {
              bandwidth: {
                ...(ingress ? { ingressRate: ingress, ingressBurst: UNLIMITED_BURST } : {}),
                ...(egress ? { egressRate: egress, egressBurst: UNLIMITED_BURST } : {}),
              },
            }
          : {}),
      },
    };
  }
}


/** The name containerd reserves per pod: name_namespace_uid_attempt. */
export function reservationKey(spec: SandboxSpec): string {
  return `${spec.name}_${spec.namespace}_${spec.uid}_${spec.attempt}`;
}
