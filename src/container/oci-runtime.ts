// An OCI runtime handler (runc, crun, runsc) driven the way CRI-O drives it: conmon
// creates the container and stays with it (holding its stdio, writing the CRI log and
// the exit code to a file), so containers outlive berthd; berthd runs `start`, `kill`,
// `delete` and `state` itself.
import { spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, mkdirSync, openSync, readFileSync, readSync, rmdirSync, rmSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError, deadlineExceeded, internal, unknownFailure } from '../errors.js';
import { runCommand } from '../linux/command.js';
import { startViaHelper } from '../linux/spawn-helper.js';
import { isRunning, killProcessTree, processStartTime } from '../linux/process-tree.js';
import { bundlePaths } from './bundle.js';

export interface OciRuntimeOptions {
  name: string;
  path: string;
  /** Global flags for the runtime (from [runtimes.NAME] options). */
  options: string[];
  /** The runtime's own state dir (its --root), private to this berthd. */
  root: string;
  conmon: string;
  cgroupDriver: 'cgroupfs' | 'systemd';
}

export interface CreateOptions {
  id: string;
  bundle: string;
  logFile: string;
  exitDir: string;
  /** Where conmon keeps files of its own for this container (oom marker…). */
  persistDir: string;
  socketDir: string;
  /** conmon allocates a terminal (the OCI spec has process.terminal). */
  terminal?: boolean;
  /** conmon keeps a stdin pipe for attach; leaveStdinOpen: not closed when a client's stdin ends. */
  stdin?: boolean;
  leaveStdinOpen?: boolean;
  /** A command conmon is started through (systemd-run --scope … with the systemd driver); it execs conmon. */
  monitorPrefix?: string[];
  /**
   * Run once conmon has daemonized (its first process exited 0, having written its pid
   * file): while the runtime creates the container. create resolves after it has settled.
   */
  monitorStarted?: () => Promise<void>;
}

const CREATE_TIMEOUT_MS = 120_000;
/** How long start waits for the end of the exec fifo after the init's byte (its execve closes it). */
const START_FIFO_WAIT_MS = 1_000;
/** How long start waits for a living init's byte on the exec fifo (`runc start` would wait for ever). */
const START_WAIT_MAX_MS = 120_000;
/** How long a timed-out exec waits for runc to write the pid file, and for runc to return after the kill. */
const EXEC_PID_WAIT_MS = 2_000;
const EXEC_KILL_GRACE_MS = 5_000;

/** What berth needs from an OCI runtime handler: OciRuntime, or a fake in unit tests. */
export interface ContainerRuntime {
  readonly options: Pick<OciRuntimeOptions, 'name' | 'path'>;
  /** The runtime's global flags (before the subcommand). */
  readonly globalArgs: string[];
  create(opts: CreateOptions): Promise<number>;
  exec(id: string, args: string[], options: { timeoutMs: number; maxOutput: number; pidFile: string }): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer; timedOut: boolean }>;
  update(id: string, resources: Record<string, unknown>): Promise<void>;
  start(id: string): Promise<void>;
  kill(id: string, signal: string): Promise<void>;
  delete(id: string): Promise<void>;
}

export class OciRuntime implements ContainerRuntime {
  /** Each created container's init (pid and start time) as conmon reported it. */
  readonly #inits = new Map<string, { pid: number; start: string }>();

  constructor(readonly options: OciRuntimeOptions) {}

  /** The runtime's global flags (before the subcommand). */
  get globalArgs(): string[] {
    return this.#globalArgs;
  }

  get #globalArgs(): string[] {
    return [`--root=${this.options.root}`, ...(this.options.cgroupDriver === 'systemd' ? ['--systemd-cgroup'] : []), ...this.options.options];
  }

  /** Creates the container under conmon; resolves with its init pid once it exists. */
  async create(opts: CreateOptions): Promise<number> {
    // Synchronously: two directories that exist after the first container (a thread-pool round trip each otherwise).
    mkdirSync(this.options.root, { recursive: true, mode: 0o700 });
    // conmon fails silently (to syslog only) when its attach socket dir is missing.
    mkdirSync(opts.socketDir, { recursive: true, mode: 0o700 });
    const args = [
      '--api-version', '1',
      '-c', opts.id,
      '-u', opts.id,
      '-n', opts.id,
      '-r', this.options.path,
      '-b', opts.bundle,
      '-p', bundlePaths(opts.bundle).pid,
      '-P', bundlePaths(opts.bundle).conmonPid,
      '-l', `k8s-file:${opts.logFile}`,
      '--exit-dir', opts.exitDir,
      '-0', opts.persistDir,
      '--socket-dir-path', opts.socketDir,
      ...this.#globalArgs.flatMap((a) => ['--runtime-arg', a]),
      ...(this.options.cgroupDriver === 'systemd' ? ['-s'] : []),
      ...(opts.terminal ? ['-t'] : []),
      ...(opts.stdin ? ['-i'] : []),
      ...(opts.stdin && opts.leaveStdinOpen ? ['--leave-stdin-open'] : []),
    ];
    return new Promise((resolve, reject) => {
      // conmon reports the container's pid (or the runtime's error) on the sync pipe, fd 3.
      const command = [...(opts.monitorPrefix ?? []), this.options.conmon, ...args];
      let stderr = '';
      let sync = '';
      let settled = false;
      // Started once, when conmon's first process exits 0 (or at the answer, if that came first).
      let monitorMove: Promise<void> | undefined;
      const moveMonitor = () => (monitorMove ??= (opts.monitorStarted?.() ?? Promise.resolve()).catch(() => undefined));
      let letGo = () => undefined as void;
      const finish = (err: Error | undefined, pid?: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        letGo();
        // Nothing of the monitor step is in flight once create settles (an undo follows a failure).
        if (err) void (monitorMove ?? Promise.resolve()).then(() => reject(err));
        else {
          this.#noteInit(opts.id, pid!);
          void moveMonitor().then(() => resolve(pid!));
        }
      };
      const timer = setTimeout(() => finish(deadlineExceeded(`${this.options.name}: creating container ${opts.id} took over ${CREATE_TIMEOUT_MS / 1000}s`)), CREATE_TIMEOUT_MS);
      const onSync = (d: Buffer) => {
        sync += d.toString();
        const line = sync.split('\n').find((l) => l.trim().startsWith('{'));
        if (!line) return;
        try {
          const message = JSON.parse(line) as { data?: number; message?: string };
          if (typeof message.data === 'number' && message.data > 0) finish(undefined, message.data);
          else finish(internal(`${this.options.name} could not create the container: ${message.message ?? stderr.trim() ?? 'no reason given'}`));
        } catch {
          // a partial line: wait for the rest
        }
      };
      const onExit = (code: number | null) => {
        if (code === 0 && !settled) void moveMonitor();
      };
      const cannotRun = (err: Error) => finish(internal(`cannot run conmon (${this.options.conmon}): ${err.message}`));
      // conmon writes an `oom` marker into its working directory (besides the persist
      // dir): the bundle, never berthd's own directory.
      const env = { ...process.env, _OCI_SYNCPIPE: '3' } as Record<string, string>;
      // Forked by the spawning helper where it runs (berthd's event loop is not blocked meanwhile).
      const viaHelper = startViaHelper({ argv: command, env, cwd: opts.bundle, newSession: true, discardStdout: true, onSync, onExit });
      if (viaHelper) {
        letGo = () => viaHelper.release();
        viaHelper.result.then(({ code, stderr: said }) => {
          onExit(code);
          // All of conmon is gone (its output closed) without an answer.
          finish(internal(code === 0 ? `conmon ended without reporting the container (${said.trim() || 'it said nothing'})` : `conmon failed (exit ${code}): ${said.trim()}`));
        }, cannotRun);
        return;
      }
      const child = spawn(command[0]!, command.slice(1), { cwd: opts.bundle, stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env, detached: true });
      letGo = () => {
        child.stdio[3]?.destroy();
        child.stderr?.destroy();
        child.unref();
      };
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdio[3]!.on('data', onSync);
      child.on('error', cannotRun);
      child.on('exit', onExit);
      child.on('close', (code) => {
        if (code !== 0) finish(internal(`conmon failed (exit ${code}): ${stderr.trim()}`));
      });
    });
  }

  /**
   * Runs a command in a running container and collects its output. runc (without a
   * TTY) copies the command's output through pipes of its own and returns only once
   * every process holding them has closed them, so a child the command leaves behind
   * keeps the call open. At the deadline the command and everything it started (its
   * session, its process group, its descendants) are killed, so nothing outlives it.
   * `timedOut` says the command itself was still running then; a command that had
   * ended, leaving only such children, gets its own exit code.
   */
  exec(id: string, args: string[], options: { timeoutMs: number; maxOutput: number; pidFile: string }): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer; timedOut: boolean }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.path, [...this.#globalArgs, 'exec', '--pid-file', options.pidFile, id, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outSize = 0;
      let errSize = 0;
      let timedOut = false;
      let exited = false;
      let lastResort: NodeJS.Timeout | undefined;
      child.stdout.on('data', (d: Buffer) => {
        if (outSize < options.maxOutput) out.push(d.subarray(0, options.maxOutput - outSize));
        outSize += d.length;
      });
      child.stderr.on('data', (d: Buffer) => {
        if (errSize < options.maxOutput) err.push(d.subarray(0, options.maxOutput - errSize));
        errSize += d.length;
      });
      const onDeadline = async () => {
        const pid = await this.#execPid(options.pidFile, () => exited);
        if (exited) return;
        if (pid === undefined) {
          // Never started (runc still setting up): runc alone is to end.
          timedOut = true;
          child.kill('SIGKILL');
          return;
        }
        timedOut = await isRunning(pid);
        await killProcessTree(pid);
        // runc now reports the exit and returns; should it not, it goes too.
        lastResort = setTimeout(() => child.kill('SIGKILL'), EXEC_KILL_GRACE_MS);
      };
      const timer = options.timeoutMs > 0 ? setTimeout(() => void onDeadline(), options.timeoutMs) : undefined;
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(internal(`cannot run ${this.options.path}: ${e.message}`));
      });
      // 'exit', not 'close': runc is gone once the pipes are closed or it was killed.
      child.on('exit', (code, signal) => {
        exited = true;
        clearTimeout(timer);
        clearTimeout(lastResort);
        setImmediate(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          const stderr = Buffer.concat(err);
          // runc could not start the command at all (no such executable, not
          // permitted…): an error, not the command's exit code; UNKNOWN, as containerd
          // passes on runc's failure.
          const failure = code === 255 ? /level=error msg="exec failed: (?:unable to start container process: )?(.*)"\s*$/m.exec(stderr.toString()) : null;
          if (failure) {
            reject(unknownFailure(`cannot run ${JSON.stringify(args)} in container ${id}: ${failure[1]!.replace(/\\"/g, '"')}`));
            return;
          }
          resolve({ exitCode: code ?? (signal ? 128 + 9 : -1), stdout: Buffer.concat(out), stderr, timedOut });
        });
      });
    });
  }

  /** The host pid of an exec'd process from runc's pid file, waiting briefly for runc to write it. */
  async #execPid(pidFile: string, gone: () => boolean): Promise<number | undefined> {
    for (const until = Date.now() + EXEC_PID_WAIT_MS; !gone(); ) {
      const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (pid > 0) return pid;
      if (Date.now() > until) return undefined;
      await sleep(20);
    }
    return undefined;
  }

  /** Gives a container new resources (an OCI linux.resources object, through `update -r -`). */
  async update(id: string, resources: Record<string, unknown>): Promise<void> {
    await runCommand(this.options.path, [...this.#globalArgs, 'update', '--resources', '-', id], `updating the resources of container ${id}`, { input: JSON.stringify(resources) });
  }

  async start(id: string): Promise<void> {
    if (await this.#startInit(id)) return;
    await runCommand(this.options.path, [...this.#globalArgs, 'start', id], `starting container ${id}`);
  }

  async kill(id: string, signal: string): Promise<void> {
    if (await this.#signalInit(id, signal)) return;
    await runCommand(this.options.path, [...this.#globalArgs, 'kill', id, signal], `signalling container ${id}`).catch((err: BerthError) => {
      // Already gone is what a kill wanted.
      if (!/not running|does not exist|container not running/i.test(err.message)) throw err;
    });
  }

  /**
   * What `runc start` does (runc 1.1: read the exec fifo the waiting init wrote to, then
   * remove it), without running runc. berth's specs carry no OCI hooks. The fifo is
   * opened without blocking, so no thread ever waits on an init that is gone. Once it is
   * open, the init's own open of it returns and its byte may come at any time after: so
   * it stays open as long as the init lives (as `runc start` waits), however slow the init
   * is under load; closed earlier, the init's write would fail with EPIPE and the init
   * die (runc: "cannot start a container that has stopped"). An init gone before its byte
   * (or no state or fifo) is left to the runtime, which reports it. True when started.
   */
  async #startInit(id: string): Promise<boolean> {
    const init = await this.#runcInit(id);
    if (!init) return false;
    const fifo = join(this.options.root, id, 'exec.fifo');
    let fd: number;
    try {
      fd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch {
      return false;
    }
    try {
      const buffer = Buffer.alloc(16);
      const opened = Date.now();
      let startedAt = 0;
      for (;;) {
        // Whether the init lives, read before the fifo: an init that wrote its byte and
        // ended (a process that exits at once) between a read and the check would be taken
        // for one that died before it; checked first, its byte is there at the read after.
        const alive = startedAt > 0 || processStartTime(init.pid) === init.start;
        let read = -1;
        try {
          read = readSync(fd, buffer, 0, buffer.length, null);
        } catch (err) {
          // Unexpected: the runtime's to report, unless the byte was read.
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') {
            if (startedAt > 0) break;
            return false;
          }
        }
        if (read > 0 && startedAt === 0) startedAt = Date.now();
        if (startedAt > 0) {
          // After the byte, the end of the file: the init's execve closed its end (as runc
          // start, which reads to the end, returns then).
          if (read === 0 || Date.now() - startedAt > START_FIFO_WAIT_MS) break;
        } else {
          // Before the byte: no writer yet (the init's open returns once a reader is there) or no byte yet.
          if (!alive) return false;
          if (Date.now() - opened > START_WAIT_MAX_MS) throw deadlineExceeded(`${this.options.name}: the init of container ${id} did not start within ${START_WAIT_MAX_MS / 1000}s`);
        }
        await sleep(startedAt > 0 ? 0 : Date.now() - opened < START_FIFO_WAIT_MS ? 1 : 10);
      }
      // runc tells a started container by its fifo being gone.
      await rm(fifo, { force: true });
      return true;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Remembers the init conmon reported for a container (runc's `init_process_pid`; its
   * start time is what runc records as `init_process_start`, read from the same
   * `/proc/PID/stat` field), so start and kill need not read runc's state.json (~10 KB of
   * JSON, four thread-pool round trips) for what berth saw at create. Forgotten at delete;
   * after a restart the state file answers.
   */
  #noteInit(id: string, pid: number): void {
    const start = processStartTime(pid);
    if (start !== undefined) this.#inits.set(id, { pid, start });
  }

  /** runc, with its state where berth put it: what start, kill and delete may do without running it. */
  #isRunc(): boolean {
    return basename(this.options.path) === 'runc' && !this.options.options.some((o) => o.startsWith('--root'));
  }

  /** runc's init of a container, as seen at create or from its state (runc only; undefined otherwise or when unreadable). */
  async #runcInit(id: string): Promise<{ pid: number; start: string } | undefined> {
    if (!this.#isRunc()) return undefined;
    const known = this.#inits.get(id);
    if (known) return known;
    let state: { init_process_pid?: unknown; init_process_start?: unknown };
    try {
      state = JSON.parse(await readFile(join(this.options.root, id, 'state.json'), 'utf8')) as typeof state;
    } catch {
      return undefined;
    }
    const pid = state.init_process_pid;
    const start = state.init_process_start;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || typeof start !== 'number') return undefined;
    return { pid, start: String(start) };
  }

  /**
   * What `runc kill` does, without running runc (a child process costs several ms): the
   * init's pid and start time from runc's state, checked against /proc so a reused pid
   * is never signalled, then kill(2). runc only (its state format); anything unexpected
   * (no state, another runtime, a signal Node does not name) leaves it to the runtime.
   * True when done: signalled, or the init is gone (what a kill wanted).
   */
  async #signalInit(id: string, signal: string): Promise<boolean> {
    const name = /^\d+$/.test(signal) ? undefined : (signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`);
    if (!name || !(name in constants.signals)) return false;
    const init = await this.#runcInit(id);
    if (!init) return false;
    const { pid } = init;
    if (processStartTime(pid) !== init.start) return true;
    try {
      process.kill(pid, name as NodeJS.Signals);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
      return false;
    }
    return true;
  }

  /**
   * What `runc delete` does to a stopped container with the cgroupfs driver (runc 1.1's
   * destroy: the container's cgroups and its state dir removed), without running runc (a
   * child of ~8 ms of CPU, the most of RemoveContainer). Only when nothing is left to
   * kill or run: its init gone, no process in any of its cgroups (a pod-wide PID
   * namespace can keep an init's children; runc kills them), no OCI hook, no Intel RDT
   * dir. Anything else, or a cgroup that will not go, is left to runc. True when done.
   * Synchronous: a small state file and cgroupfs rmdirs.
   */
  #deleteStopped(id: string): boolean {
    if (!this.#isRunc() || this.options.cgroupDriver !== 'cgroupfs') return false;
    const dir = join(this.options.root, id);
    let state: { init_process_pid?: unknown; init_process_start?: unknown; cgroup_paths?: Record<string, unknown>; intel_rdt_path?: unknown; config?: { Hooks?: Record<string, unknown> | null } };
    try {
      state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as typeof state;
    } catch {
      return false;
    }
    const pid = state.init_process_pid;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || typeof state.init_process_start !== 'number') return false;
    if (processStartTime(pid) === String(state.init_process_start)) return false;
    if (state.intel_rdt_path || Object.values(state.config?.Hooks ?? {}).some((hooks) => Array.isArray(hooks) && hooks.length > 0)) return false;
    const paths = Object.values(state.cgroup_paths ?? {});
    if (!paths.every((p): p is string => typeof p === 'string' && p.startsWith('/sys/fs/cgroup/'))) return false;
    for (const path of paths) {
      try {
        if (readFileSync(join(path, 'cgroup.procs'), 'utf8').trim() !== '') return false;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      }
    }
    for (const path of paths) {
      try {
        rmdirSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    return true;
  }

  async delete(id: string): Promise<void> {
    this.#inits.delete(id);
    if (this.#deleteStopped(id)) return;
    await runCommand(this.options.path, [...this.#globalArgs, 'delete', '--force', id], `deleting container ${id}`).catch((err: BerthError) => {
      if (!/does not exist|not exist/i.test(err.message)) throw err;
    });
  }
}
