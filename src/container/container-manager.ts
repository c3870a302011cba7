// Containers from CreateContainer to RemoveContainer: an overlay rootfs on the image's
// snapshots, an OCI bundle, conmon and the runtime handler. berthd learns of exits from
// conmon's exit files, so a container that ended while berthd was down is reported
// with its code after the restart. One record on disk and one object in memory each.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants as fsConstants, watch, type FSWatcher } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { BerthError, notFound } from '../errors.js';
import type { BerthConfig } from '../daemon/config.js';
import { RecordStore } from '../store/record-store.js';
import { KeyedMutex } from '../util/locks.js';
import { runCommand } from '../linux/command.js';
import { controllerAvailable, moveIntoCgroup, removeLeafCgroup } from '../linux/cgroups.js';
import { mountPoints, preparePrivateDir, removeUnmounted } from '../linux/namespaces.js';
import type { ImageManager } from '../image/image-manager.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import { devicesFromPath, hostDevices } from '../linux/devices.js';
import { hostCapabilities } from '../linux/capabilities.js';
import { recursiveReadOnlyBind, unmountTree } from '../linux/recursive-readonly.js';
import { checkPropagationSource } from '../linux/mount-propagation.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import { mountPodShm } from '../pod/pod-files.js';
import { buildOciSpec, ociResources, type ImageRuntimeConfig } from './oci-spec.js';
import { OciRuntime } from './oci-runtime.js';
import { resolveUser } from './user.js';
import { seccompFor } from './seccomp.js';
import { attachToConmon, execWithPipes, execWithTerminal } from './stream-sessions.js';
import type { AttachRequest, ExecRequest, StreamIO } from '../stream/backends.js';
import type { ContainerMount, ContainerRecord, ContainerResources, ContainerSpec, ContainerState } from './container-types.js';
import { noContainerEvents, type ContainerEventPublisher } from '../events/container-events.js';

export interface ContainerManagerOptions {
  config: BerthConfig;
  images: ImageManager;
  pods: SandboxManager;
  log: Logger;
  conmon?: string;
  /** Where CREATED/STARTED/STOPPED/DELETED are published (GetContainerEvents). */
  events?: ContainerEventPublisher;
}

const KILL_WAIT_MS = 10_000;
/** The exit dir is watched; this sweep catches whatever a watch could miss. */
const EXIT_SWEEP_MS = 5_000;
/** An exit file still empty after this long is taken as it is (conmon writes it whole, by rename). */
const EMPTY_EXIT_FILE_GRACE_MS = 2_000;
/** ExecSync keeps at most this much of each stream (what the kubelet's probes need). */
const EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024;

export class ContainerManager {
  readonly #records = new Map<string, ContainerRecord>();
  readonly #store: RecordStore<ContainerRecord>;
  readonly #locks = new KeyedMutex();
  readonly #names = new Map<string, string>();
  readonly #runtimes = new Map<string, OciRuntime>();
  readonly #dir: string;
  readonly #exitDir: string;
  /** Recursive read-only trees, under a private mount so no other namespace gets copies. */
  readonly #rroDir: string;
  /** conmon's attach sockets: <attachDir>/<container or exec session id>/attach. */
  readonly #attachDir: string;
  readonly #events: ContainerEventPublisher;
  #exitWatcher: FSWatcher | undefined;
  #exitSweep: NodeJS.Timeout | undefined;

  constructor(private readonly options: ContainerManagerOptions) {
    const { config } = options;
    this.#store = new RecordStore(join(config.root, 'containers'));
    this.#dir = join(config.state, 'containers');
    this.#exitDir = join(config.state, 'exits');
    this.#rroDir = join(config.state, 'rro');
    this.#attachDir = join(config.state, 'attach');
    this.#events = options.events ?? noContainerEvents;
    for (const [name, handler] of Object.entries(config.runtimes)) {
      this.#runtimes.set(
        name,
        new OciRuntime({ name, path: handler.path, options: handler.options, root: join(config.state, 'runtime', name), conmon: options.conmon ?? '/usr/bin/conmon', cgroupDriver: config.cgroup_driver }),
      );
    }
  }

  async recover(): Promise<void> {
    await mkdir(this.#exitDir, { recursive: true, mode: 0o700 });
    await preparePrivateDir(this.#rroDir);
    const { records, problems } = await this.#store.loadAll();
    for (const problem of problems) this.options.log.error({ problem }, 'skipping unreadable container record');
    for (const record of records) {
      this.#records.set(record.id, record);
      this.#names.set(this.#nameKey(record.podId, record.spec), record.id);
      await this.#refresh(record);
    }
    // Bundles without a record: a crash during CreateContainer. Nothing may stay mounted.
    for (const id of await readdir(this.#dir).catch(() => [] as string[])) {
      if (this.#records.has(id)) continue;
      this.options.log.warn({ container: id }, 'removing a container bundle that a crash left behind');
      const orphan = { id, bundle: join(this.#dir, id) };
      // Which handler made it is not known: each forgets it (conmon then exits).
      for (const runtime of this.#runtimes.values()) await runtime.delete(id).catch(() => undefined);
      try {
        await this.#unmountRootfs(orphan);
        await this.#removeBundle(orphan);
        await rm(join(this.#exitDir, id), { force: true });
      } catch (err) {
        this.options.log.error({ container: id, error: (err as Error).message }, 'cannot remove a container bundle left behind; it stays for a later start');
      }
    }
    this.#watchExits();
  }

  /**
   * Exits are noticed as conmon writes them, not only when a client asks: an inotify
   * watch on the exit dir, and a slow sweep of it for anything a watch could miss.
   */
  #watchExits(): void {
    if (this.#exitWatcher) return;
    const check = (id: string) => {
      const record = this.#records.get(id);
      if (!record || record.state === 'exited') return;
      this.#locks
        .lock(id, () => this.#refresh(record))
        .catch((err: Error) => this.options.log.warn({ container: id, error: err.message }, 'cannot read an exit file'));
    };
    try {
      this.#exitWatcher = watch(this.#exitDir, (_event, name) => {
        if (name) check(name.toString());
      });
      this.#exitWatcher.on('error', (err) => this.options.log.warn({ error: err.message }, 'the exit dir watch failed; exits are found by the sweep'));
    } catch (err) {
      this.options.log.warn({ error: (err as Error).message }, 'cannot watch the exit dir; exits are found by the sweep');
    }
    this.#exitSweep = setInterval(() => {
      void readdir(this.#exitDir).then((names) => names.forEach(check), () => undefined);
    }, EXIT_SWEEP_MS);
    this.#exitSweep.unref();
  }

  /** Stops watching for exits (berthd is stopping). */
  close(): void {
    this.#exitWatcher?.close();
    this.#exitWatcher = undefined;
    clearInterval(this.#exitSweep);
  }

  list(): ContainerRecord[] {
    return [...this.#records.values()];
  }

  find(idOrPrefix: string): ContainerRecord | undefined {
    if (!idOrPrefix) return undefined;
    const exact = this.#records.get(idOrPrefix);
    if (exact) return exact;
    const matches = this.list().filter((r) => r.id.startsWith(idOrPrefix));
    if (matches.length > 1) throw new BerthError('InvalidArgument', `container id prefix "${idOrPrefix}" is ambiguous`);
    return matches[0];
  }

  /** A container with its state brought up to date from its exit file. */
  async get(idOrPrefix: string): Promise<ContainerRecord> {
    const record = this.find(idOrPrefix);
    if (!record) throw notFound('container', idOrPrefix);
    await this.#refresh(record);
    return record;
  }

  async listFresh(): Promise<ContainerRecord[]> {
    for (const record of this.#records.values()) await this.#refresh(record);
    return this.list();
  }

  #nameKey(podId: string, spec: ContainerSpec): string {
    return `${spec.name}_${podId}_${spec.attempt}`;
  }

  async create(podId: string, spec: ContainerSpec): Promise<string> {
    const pod = this.options.pods.get(podId);
    if (pod.state !== 'ready') throw new BerthError('FailedPrecondition', `pod sandbox ${pod.id} is not ready`);
    if (!spec.name) throw new BerthError('InvalidArgument', 'container metadata needs a name');
    const key = this.#nameKey(pod.id, spec);
    const taken = this.#names.get(key);
    if (taken) throw new BerthError('AlreadyExists', `container name "${key}" is reserved for container ${taken}`);
    const image = this.options.images.get(spec.image);
    const runtime = this.#runtimes.get(pod.spec.runtimeHandler);
    if (!runtime) throw new BerthError('FailedPrecondition', `runtime handler "${pod.spec.runtimeHandler}" is not configured`);
    for (const m of spec.mounts) {
      if (!isAbsolute(m.containerPath) || !isAbsolute(m.hostPath)) throw new BerthError('InvalidArgument', `mount ${m.hostPath}:${m.containerPath} needs absolute paths`);
    }
    // A host path that does not exist is created as a directory, as containerd (and
    // Docker) do; a file stays a file.
    for (const m of spec.mounts) {
      if (!(await stat(m.hostPath).then(() => true, () => false))) await mkdir(m.hostPath, { recursive: true, mode: 0o755 });
    }
    for (const m of spec.mounts) await checkPropagationSource(m.hostPath, m.propagation);
    // Reserved before anything is awaited: a retry overlapping this call must see it.
    const id = randomBytes(32).toString('hex');
    this.#names.set(key, id);
    const bundle = join(this.#dir, id);
    const logFile = pod.spec.logDirectory && spec.logPath ? join(pod.spec.logDirectory, spec.logPath) : join(bundle, 'console.log');
    const record: ContainerRecord = {
      id,
      podId: pod.id,
      spec: { ...spec, imageId: image.id },
      state: 'created',
      createdAt: nowNanos(),
      startedAt: '0',
      finishedAt: '0',
      exitCode: 0,
      reason: '',
      message: '',
      logFile,
      bundle,
      runtime: runtime.options.name,
      pid: 0,
      cgroupsPath: `${pod.cgroupPath || '/berth'}/berth-${id}`,
    };
    try {
      const pidNamespace = await this.#pidNamespace(pod, spec);
      // Made with the pod; made here too for a pod from before berth had it (idempotent).
      if (pod.ipcns) await mountPodShm(pod.podDir);
      const requested = (await Promise.all(spec.devices.map(async (d) => (await devicesFromPath(d.hostPath, d.containerPath)).map((node) => ({ ...node, permissions: d.permissions }))))).flat();
      // Privileged: the host's devices too (its cgroup allows every device anyway).
      const devices = spec.privileged ? [...(await hostDevices()).map((d) => ({ ...d, permissions: 'rwm' })), ...requested] : requested;
      await mkdir(bundle, { recursive: true, mode: 0o700 });
      const rootfs = await this.#mountRootfs(record, image.layers.map((l) => this.options.images.snapshots.path(l.chainId)).reverse());
      const imageConfig = (JSON.parse((await this.options.images.content.read(image.id)).toString('utf8')) as { config?: ImageRuntimeConfig }).config ?? {};
      const user = await resolveUser(rootfs, { ...spec, imageUser: image.user });
      const cgroupsPath = record.cgroupsPath;
      const seccomp = await seccompFor(spec.seccomp, spec.privileged);
      const mounts = await this.#prepareMounts(record);
      const oci = buildOciSpec({ id, spec, pod, image: imageConfig, user, rootfs, cgroupsPath, minOomScoreAdj: await ownOomScoreAdj(), seccomp, devices, pidNamespace, mounts, hostCapabilities: await hostCapabilities(), hugetlb: await controllerAvailable('hugetlb') });
      if (!spec.stopSignal && imageConfig.StopSignal) record.spec.stopSignal = imageConfig.StopSignal;
      await writeFile(join(bundle, 'config.json'), JSON.stringify(oci));
      await mkdir(dirname(logFile), { recursive: true });
      record.pid = await runtime.create({ id, bundle, logFile, exitDir: this.#exitDir, persistDir: bundle, socketDir: this.#attachDir, terminal: spec.tty, stdin: spec.stdin, leaveStdinOpen: !spec.stdinOnce });
      await this.#moveMonitor(record);
      await this.#store.put(id, record);
      this.#records.set(id, record);
      this.#events.publish('created', id, pod.id);
      this.options.log.info({ container: id, pod: pod.id, name: spec.name }, 'container created');
      return id;
    } catch (err) {
      this.#names.delete(key);
      await runtime.delete(id).catch(() => undefined);
      await this.#unmountRootfs(record).catch(() => undefined);
      await this.#removeBundle(record).catch((cleanup: Error) => this.options.log.error({ container: id, error: cleanup.message }, 'cannot clean up after a failed create'));
      await removeLeafCgroup(this.#monitorCgroup(record)).catch(() => undefined);
      throw err;
    }
  }

  async start(idOrPrefix: string): Promise<void> {
    const record = await this.get(idOrPrefix);
    await this.#locks.lock(record.id, async () => {
      if (record.state !== 'created') throw new BerthError('FailedPrecondition', `container ${record.id} is ${record.state}, not created`);
      // Taken before start: a short-lived process can exit before `start` returns.
      const startedAt = nowNanos();
      await this.#runtime(record).start(record.id);
      record.startedAt = startedAt;
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
    if (!record) throw notFound('container', idOrPrefix);
    await this.#locks.lock(record.id, async () => {
      await this.#refresh(record);
      if (record.state === 'exited') return;
      const runtime = this.#runtime(record);
      if (record.state === 'running' && timeoutSeconds > 0) {
        await runtime.kill(record.id, record.spec.stopSignal || 'SIGTERM');
        if (await this.#waitExit(record, timeoutSeconds * 1000)) return;
      }
      await runtime.kill(record.id, 'SIGKILL');
      if (!(await this.#waitExit(record, KILL_WAIT_MS)) && record.state === 'created') {
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
      await this.#runtime(record).delete(record.id);
      await this.#unmountRootfs(record);
      await this.#removeBundle(record);
      await rm(join(this.#exitDir, record.id), { force: true });
      await removeLeafCgroup(this.#monitorCgroup(record)).catch((err: Error) => this.options.log.warn({ container: record.id, error: err.message }, "cannot remove conmon's cgroup"));
      await this.#store.delete(record.id);
      this.#records.delete(record.id);
      this.#names.delete(this.#nameKey(record.podId, record.spec));
      this.#events.publish('deleted', record.id, record.podId);
      this.options.log.info({ container: record.id }, 'container removed');
    });
  }

  /**
   * New resources for a running or created container, recorded for status. What the
   * request leaves unset (0 or empty) keeps its current value.
   */
  async updateResources(idOrPrefix: string, resources: ContainerResources): Promise<void> {
    const record = await this.get(idOrPrefix);
    await this.#locks.lock(record.id, async () => {
      if (record.state === 'exited') throw new BerthError('FailedPrecondition', `container ${record.id} has exited`);
      // `runc update` does not apply hugepage limits: refused rather than recorded as applied.
      if (resources.hugepageLimits.length > 0 && JSON.stringify(resources.hugepageLimits) !== JSON.stringify(record.spec.hugepageLimits ?? [])) {
        throw new BerthError('InvalidArgument', `container ${record.id}: hugepage limits cannot be changed after creation`);
      }
      const merged: ContainerResources = {
        cpuShares: resources.cpuShares || record.spec.cpuShares,
        cpuQuota: resources.cpuQuota || record.spec.cpuQuota,
        cpuPeriod: resources.cpuPeriod || record.spec.cpuPeriod,
        memoryLimit: resources.memoryLimit || record.spec.memoryLimit,
        // A new memory limit without a swap limit means no swap again.
        memorySwapLimit: resources.memorySwapLimit || (resources.memoryLimit ? 0 : (record.spec.memorySwapLimit ?? 0)),
        cpusetCpus: resources.cpusetCpus || (record.spec.cpusetCpus ?? ''),
        cpusetMems: resources.cpusetMems || (record.spec.cpusetMems ?? ''),
        hugepageLimits: resources.hugepageLimits.length > 0 ? resources.hugepageLimits : (record.spec.hugepageLimits ?? []),
        unified: Object.keys(resources.unified).length > 0 ? resources.unified : (record.spec.unified ?? {}),
      };
      await this.#runtime(record).update(record.id, ociResources(merged, { hugetlb: await controllerAvailable('hugetlb') }));
      Object.assign(record.spec, merged);
      await this.#store.put(record.id, record);
    });
  }

  /** The PID namespace a container gets: the pod's, its own, the host's, or a target container's. */
  async #pidNamespace(pod: SandboxRecord, spec: ContainerSpec): Promise<{ path?: string } | undefined> {
    const mode = spec.pidMode ?? pod.spec.namespaces.pid;
    switch (mode) {
      case 'node':
        return undefined;
      case 'container':
        return {};
      case 'pod':
        if (!pod.pidns) throw new BerthError('FailedPrecondition', `pod sandbox ${pod.id} has no shared PID namespace (its PID mode is ${pod.spec.namespaces.pid.toUpperCase()})`);
        return { path: pod.pidns };
      case 'target': {
        if (!spec.pidTargetId) throw new BerthError('InvalidArgument', 'PID namespace mode TARGET needs a target_id');
        const target = await this.get(spec.pidTargetId);
        if (target.podId !== pod.id) throw new BerthError('InvalidArgument', `target container ${target.id} is not in pod ${pod.id}`);
        if (target.state !== 'running') throw new BerthError('FailedPrecondition', `target container ${target.id} is not running`);
        return { path: `/proc/${target.pid}/ns/pid` };
      }
    }
  }

  /**
   * Asks conmon to reopen the log file (after the kubelet rotated it). Never waits on a
   * conmon that is gone: the control fifo is opened without blocking.
   */
  async reopenLog(idOrPrefix: string): Promise<void> {
    const record = await this.get(idOrPrefix);
    if (record.state !== 'running') throw new BerthError('FailedPrecondition', `container ${record.id} is not running; its log cannot be reopened`);
    let ctl;
    try {
      ctl = await open(join(record.bundle, 'ctl'), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      throw new BerthError('FailedPrecondition', `container ${record.id}: conmon is not listening (${(err as NodeJS.ErrnoException).code})`);
    }
    try {
      await ctl.write('2 0 0\n');
    } finally {
      await ctl.close();
    }
    for (let i = 0; i < 40; i++) {
      if (await stat(record.logFile).then(() => true, () => false)) return;
      await sleep(50);
    }
    throw new BerthError('Internal', `container ${record.id}: conmon did not reopen ${record.logFile}`);
  }

  /** Runs a command in a running container (ExecSync). */
  async execSync(idOrPrefix: string, command: string[], timeoutSeconds: number): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer }> {
    const record = await this.get(idOrPrefix);
    if (record.state !== 'running') throw new BerthError('FailedPrecondition', `container ${record.id} is not running (${record.state})`);
    if (command.length === 0) throw new BerthError('InvalidArgument', 'ExecSync: cmd is required');
    const pidFile = join(record.bundle, `exec-${randomBytes(6).toString('hex')}.pid`);
    try {
      const result = await this.#runtime(record).exec(record.id, command, { timeoutMs: timeoutSeconds * 1000, maxOutput: EXEC_OUTPUT_LIMIT, pidFile });
      // containerd's answer too: DeadlineExceeded, which the kubelet reads as a timed-out probe.
      if (result.timedOut) throw new BerthError('DeadlineExceeded', `command ${JSON.stringify(command)} timed out after ${timeoutSeconds}s and was killed with every process it started`);
      return result;
    } finally {
      await rm(pidFile, { force: true });
    }
  }

  /** A running container, or FailedPrecondition (for exec and attach). */
  async running(idOrPrefix: string): Promise<ContainerRecord> {
    const record = await this.get(idOrPrefix);
    if (record.state !== 'running') throw new BerthError('FailedPrecondition', `container ${record.id} is not running (${record.state})`);
    return record;
  }

  /** A streaming exec (the Exec URL's session); resolves with the command's exit code. */
  async execStream(request: ExecRequest, io: StreamIO): Promise<number> {
    const record = await this.running(request.containerId);
    const runtime = this.#runtime(record);
    if (!request.tty) {
      const pidFile = join(record.bundle, `exec-${randomBytes(6).toString('hex')}.pid`);
      try {
        return await execWithPipes(runtime, record.id, request.cmd, io, pidFile);
      } finally {
        await rm(pidFile, { force: true });
      }
    }
    const spec = (await this.runtimeSpecOf(record)) as { process?: Record<string, unknown> } | null;
    if (!spec?.process) throw new BerthError('Internal', `container ${record.id} has no OCI process to exec from`);
    return execWithTerminal(
      { runtime, conmon: this.options.conmon ?? '/usr/bin/conmon', containerId: record.id, process: spec.process, cmd: request.cmd, sessionRoot: join(this.options.config.state, 'exec'), socketDir: this.#attachDir },
      io,
    );
  }

  /** Attaches to a running container's stdio (through conmon) until it exits or the client leaves. */
  async attach(request: AttachRequest, io: StreamIO): Promise<void> {
    const record = await this.running(request.containerId);
    await attachToConmon(join(this.#attachDir, record.id), join(record.bundle, 'ctl'), io);
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
    return JSON.parse(await readFile(join(record.bundle, 'config.json'), 'utf8').catch(() => 'null'));
  }

  /** Containers of a pod (for pod stop and remove). */
  ofPod(podId: string): ContainerRecord[] {
    return this.list().filter((r) => r.podId === podId);
  }

  #runtime(record: ContainerRecord): OciRuntime {
    const runtime = this.#runtimes.get(record.runtime);
    if (!runtime) throw new BerthError('FailedPrecondition', `runtime handler "${record.runtime}" is no longer configured`);
    return runtime;
  }

  /** Reads conmon's exit file: the container's code, written even while berthd was down. */
  async #refresh(record: ContainerRecord): Promise<void> {
    if (record.state === 'exited') return;
    const exitFile = join(this.#exitDir, record.id);
    const text = await readFile(exitFile, 'utf8').catch(() => undefined);
    if (text === undefined) return;
    const finished = await stat(exitFile).then((s) => s.mtimeMs, () => undefined);
    if (finished === undefined) return;
    // Seen between its creation and its first write: not yet an exit.
    if (text.trim() === '' && Date.now() - finished < EMPTY_EXIT_FILE_GRACE_MS) return;
    const code = Number.parseInt(text.trim(), 10);
    const oom = await stat(join(record.bundle, 'oom')).then(() => true, () => false);
    // Another reader may have got here first while this one read files.
    if ((record.state as ContainerState) === 'exited') return;
    this.#markExited(record, Number.isNaN(code) ? -1 : code, oom ? 'OOMKilled' : code === 0 ? 'Completed' : 'Error', '', BigInt(Math.round(finished * 1e6)).toString());
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
    record.finishedAt = finishedAt;
    this.#events.publish('stopped', record.id, record.podId);
  }

  async #waitExit(record: ContainerRecord, ms: number): Promise<boolean> {
    const started = Date.now();
    while (Date.now() < started + ms) {
      await this.#refresh(record);
      if (record.state === 'exited') return true;
      // A killed process is usually gone within milliseconds: look often at first.
      await sleep(Date.now() - started < 500 ? 5 : 50);
    }
    return false;
  }

  async #mountRootfs(record: ContainerRecord, lowers: string[]): Promise<string> {
    const upper = join(record.bundle, 'upper');
    const work = join(record.bundle, 'work');
    const rootfs = join(record.bundle, 'rootfs');
    for (const dir of [upper, work, rootfs]) await mkdir(dir, { recursive: true, mode: 0o755 });
    await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`, rootfs], 'mounting the container rootfs');
    return rootfs;
  }

  /**
   * The CRI mounts to bind, recursive read-only ones replaced by trees berth builds in
   * its private rro dir (one at a time: a failure must not race a half-built tree).
   */
  async #prepareMounts(record: ContainerRecord): Promise<ContainerMount[]> {
    const mounts: ContainerMount[] = [];
    for (const [i, m] of record.spec.mounts.entries()) {
      // A file has no submounts: a plain read-only bind is already all the way down.
      if (!m.recursiveReadOnly || !(await stat(m.hostPath).then((s) => s.isDirectory(), () => false))) {
        mounts.push(m);
        continue;
      }
      const tree = join(this.#rroDir, record.id, String(i));
      await recursiveReadOnlyBind(m.hostPath, tree);
      mounts.push({ ...m, hostPath: tree });
    }
    return mounts;
  }

  /** Unmounts the rootfs and any recursive read-only trees of a container (or of a bundle left by a crash). */
  async #unmountRootfs(record: Pick<ContainerRecord, 'id' | 'bundle'>): Promise<void> {
    const rootfs = join(record.bundle, 'rootfs');
    if ((await mountPoints()).has(rootfs)) await runCommand('umount', [rootfs], 'unmounting the container rootfs');
    const trees = join(this.#rroDir, record.id);
    for (const tree of await readdir(trees).catch(() => [] as string[])) await unmountTree(join(trees, tree));
  }

  /** conmon's own cgroup, beside the container's under the pod's. */
  #monitorCgroup(record: Pick<ContainerRecord, 'id' | 'cgroupsPath'>): string {
    return join(dirname(record.cgroupsPath), `berth-conmon-${record.id}`);
  }

  /** Moves conmon out of berthd's cgroup, so whatever stops berthd leaves it running. */
  async #moveMonitor(record: ContainerRecord): Promise<void> {
    try {
      const pid = Number((await readFile(join(record.bundle, 'conmon.pid'), 'utf8')).trim());
      if (pid > 0) await moveIntoCgroup(this.#monitorCgroup(record), pid);
    } catch (err) {
      this.options.log.warn({ container: record.id, error: (err as Error).message }, "conmon stays in berthd's cgroup");
    }
  }

  /** Removes the bundle and rro dir, refusing while anything below is still mounted. */
  async #removeBundle(record: Pick<ContainerRecord, 'id' | 'bundle'>): Promise<void> {
    await removeUnmounted(join(this.#rroDir, record.id), record.bundle);
  }
}

function nowNanos(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

/** berthd's own oom_score_adj: without CAP_SYS_RESOURCE nothing lower can be set. */
async function ownOomScoreAdj(): Promise<number> {
  return Number((await readFile('/proc/self/oom_score_adj', 'utf8').catch(() => '0')).trim()) || 0;
}

export type { ContainerState };
