// A pod-wide PID namespace (namespace mode POD). Unlike the network, UTS and IPC
// namespaces, a PID namespace whose first process has died accepts no new processes,
// so a pin alone is not enough: catatonit sits in it as its init (reaping orphans, as
// the pause container does for containerd). It is started by util-linux's unshare,
// which is then killed, leaving catatonit alone, reparented, and no berthd child: it
// lives on while berthd restarts.
//
// Every container of the pod sees it as pid 1, so it must give them nothing: it runs
// as nobody with no capabilities, chrooted into a directory holding only its own
// (static) binary, so /proc/1/root leads nowhere. (Its mount namespace stays the
// host's: a private copy would hold every mount of the moment alive for the pod's life.)
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { closeSync, openSync, readFileSync, readlinkSync, readSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { internal } from '../errors.js';
import { unpinNamespaces } from './namespaces.js';
import { runCommand, runHelperOperation } from './command.js';
import { startViaHelper } from './spawn-helper.js';
import { mountPoints } from './mount-table.js';

const NOBODY = '65534';

/** The root the pod inits run in: an otherwise empty directory with catatonit in it. */
export async function prepareInfraRoot(dir: string, catatonit: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const target = join(dir, 'catatonit');
  const [source, present] = await Promise.all([stat(catatonit).catch(() => undefined), stat(target).catch(() => undefined)]);
  if (!source) return; // a pod that needs it fails with a clear error then
  if (present && present.size === source.size && present.mtimeMs >= source.mtimeMs) return;
  await copyFile(catatonit, `${target}.tmp`);
  await chmod(`${target}.tmp`, 0o555);
  await rename(`${target}.tmp`, target);
}

const START_TIMEOUT_MS = 5_000;

/** Creates a PID namespace pinned at pinFile with catatonit (from infraRoot) as its init; returns its host pid. */
export async function startPidNamespace(pinFile: string, infraRoot: string, userns?: string, prefix: string[] = []): Promise<number> {
  // An empty file in the state dir: created directly (three thread-pool round trips otherwise).
  writeFileSync(pinFile, '', { mode: 0o444 });
  // Where the spawning helper makes its own operations, one child of it does all of it
  // with no exec: no unshare(1) to wait for, kill and poll /proc for.
  if (!userns && prefix.length === 0) {
    const started = startInitByHelper(pinFile, infraRoot);
    if (started) return started;
  }
  // In a pod's user namespace the PID namespace must be its (or the containers could not
  // mount /proc): unshare runs inside it (nsenter makes it the namespace's root), and
  // berthd pins the namespace itself, since unshare could not mount on the host from there.
  const args = [userns ? '--pid' : `--pid=${pinFile}`, '--fork', `--root=${infraRoot}`, '--setuid', NOBODY, '--setgid', NOBODY, '--', '/catatonit', '-P'];
  // A prefix (systemd-run --scope) execs the rest in the same process: its pid is theirs.
  const command = [...prefix, ...(userns ? ['nsenter', `--user=${userns}`, '--'] : []), 'unshare', ...args];
  const unshare = startChild(command);
  try {
    const until = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < until && !unshare.ended()) {
      const pid = unshare.pid();
      // The helper names its child's pid with its first answer.
      if (pid === undefined) {
        await sleep(1);
        continue;
      }
      const init = childOf(pid);
      // Up once the child runs catatonit itself (not unshare before its exec) in the
      // pinned namespace (an unpinned file's inode never matches a namespace's).
      const exe = init > 0 ? exeOf(init) : '';
      if (userns && basename(exe) === 'catatonit' && !(await isMounted(pinFile))) await bindNamespace(`/proc/${init}/ns/pid`, pinFile);
      if (basename(exe) === 'catatonit' && (await inPinnedNamespace(init, pinFile))) {
        // unshare only waits for catatonit: without it catatonit lives on by itself.
        await unshare.kill();
        return init;
      }
      await sleep(5);
    }
    throw internal(`cannot start the pod's PID namespace init (${join(infraRoot, 'catatonit')}): ${unshare.stderr().trim() || 'it did not come up'}`);
  } catch (err) {
    if (!unshare.ended()) await unshare.kill();
    // A catatonit that came up late is found by its namespace and ended with it.
    await stopPidNamespace(pinFile, undefined);
    throw err;
  } finally {
    unshare.letGo();
  }
}

/** The helper's 'init' operation: its answer is the init's host pid, given once catatonit runs and the namespace is pinned. */
function startInitByHelper(pinFile: string, infraRoot: string): Promise<number> | undefined {
  const doing = `cannot start the pod's PID namespace init (${join(infraRoot, 'catatonit')})`;
  // A session of its own, as unshare's was: no signal to berthd's process group reaches it.
  const operation = runHelperOperation(['init', pinFile, infraRoot, NOBODY, '/catatonit', '-P'], doing, { timeoutMs: START_TIMEOUT_MS, newSession: true });
  return operation?.then(
    ({ stdout }) => {
      const pid = Number(stdout.trim());
      if (!Number.isInteger(pid) || pid <= 0) throw internal(`${doing}: no pid in ${JSON.stringify(stdout)}`);
      return pid;
    },
    async (err: Error) => {
      // A catatonit that came up late is found by its namespace and ended with it.
      await stopPidNamespace(pinFile, undefined);
      throw err;
    },
  );
}

/** unshare running the pod init: forked by the spawning helper where it runs, else by Node. */
interface InitStarter {
  pid(): number | undefined;
  ended(): boolean;
  stderr(): string;
  /** SIGKILL, and its end awaited. */
  kill(): Promise<void>;
  /** Nothing of it is read any more (catatonit keeps its stderr). */
  letGo(): void;
}

function startChild(command: string[]): InitStarter {
  let pid: number | undefined;
  let ended = false;
  let stderr = '';
  let markEnded = () => undefined as void;
  const exited = new Promise<void>((resolve) => (markEnded = () => ((ended = true), resolve())));
  const viaHelper = startViaHelper({ argv: command, newSession: true, discardStdout: true, onPid: (p) => (pid = p), onExit: markEnded });
  if (viaHelper) {
    viaHelper.result.then(({ stderr: said }) => ((stderr = said), markEnded()), (err: Error) => ((stderr = err.message), markEnded()));
    return {
      pid: () => pid,
      ended: () => ended,
      stderr: () => stderr,
      kill: async () => {
        if (ended) return;
        if (pid) process.kill(pid, 'SIGKILL');
        await exited;
      },
      letGo: () => viaHelper.release(),
    };
  }
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('exit', markEnded);
  child.once('error', (err) => ((stderr += err.message), markEnded()));
  return {
    pid: () => child.pid,
    ended: () => ended || child.exitCode !== null || child.signalCode !== null,
    stderr: () => stderr,
    kill: async () => {
      if (ended || child.pid === undefined) return;
      child.kill('SIGKILL');
      await exited;
    },
    letGo: () => child.stderr.destroy(),
  };
}

/**
 * Ends every process of the pod's PID namespace (killing its init does) and unpins it.
 * Without a known init (a crash before it was recorded) the init is looked up by the
 * namespace itself. Idempotent.
 */
export async function stopPidNamespace(pinFile: string | undefined, init: number | undefined): Promise<void> {
  if (!pinFile) return;
  const target = init && (await inPinnedNamespace(init, pinFile)) ? init : await initOf(pinFile);
  if (target) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await unpinNamespaces([pinFile]);
}

/** The process that is pid 1 of the namespace pinned at pinFile, if any. */
async function initOf(pinFile: string): Promise<number | undefined> {
  const pinned = await stat(pinFile).catch(() => undefined);
  if (!pinned) return undefined;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ns = await stat(`/proc/${entry}/ns/pid`).catch(() => undefined);
    if (!ns || ns.ino !== pinned.ino || ns.dev !== pinned.dev) continue;
    // NSpid's last field is the pid inside the namespace: 1 for its init.
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    if (/^NSpid:.*\s1$/m.test(status)) return Number(entry);
  }
  return undefined;
}

/** True when the pid is (still) the init of the namespace pinned at pinFile, not a reused pid. */
export async function inPinnedNamespace(pid: number, pinFile: string): Promise<boolean> {
  return inPinnedNamespaceSync(pid, pinFile);
}

function inPinnedNamespaceSync(pid: number, pinFile: string): boolean {
  // A pin on the state dir and procfs answer at once: read directly, not through the thread pool.
  const pinned = statSync(pinFile, { throwIfNoEntry: false });
  const own = statSync(`/proc/${pid}/ns/pid`, { throwIfNoEntry: false });
  if (!pinned || !own || pinned.ino !== own.ino || pinned.dev !== own.dev) return false;
  // A zombie still has its namespace link until reaped: count it as gone.
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // gone meanwhile
  }
  return !/\) [ZXx] /.test(status);
}

/** A pod init held open: whether it still lives costs at most one read, and its pid cannot be reused under it. */
export interface InitHandle {
  /** False once the process has exited (a zombie its parent has not reaped counts as exited) or was reaped. */
  alive(): boolean;
  /** Whether its end is watched (its own cgroup's cgroup.events): then alive() reads only after a change. */
  readonly watched: boolean;
  close(): void;
}

const statmBuffer = Buffer.allocUnsafe(128);
const DIGIT_ZERO = 0x30;
/** A watched init is read again at least this often anyway (a watch that missed its event, were there one). */
const WATCHED_REREAD_MS = 10_000;

/**
 * Opens the init's /proc/PID/statm and keeps it open, once the init has been found in the
 * pod's PID namespace. The open file belongs to that process, not to its pid: once the
 * process is reaped, reads fail (ESRCH) even when a new process has taken the pid. An
 * exited process that is not reaped yet (a zombie) has no memory left: its statm reads
 * all zeros, where a running one's size is never 0. So a check is one read from memory,
 * no path lookup, no stat (statm, not stat: the kernel makes it in half the time).
 *
 * With `unified` (the cgroup v2 hierarchy's mount), when the init is alone in its own
 * cgroup there, that cgroup's cgroup.events is watched too: `populated` drops to 0 as the
 * init exits (a zombie is no member), and inotify tells. Until it tells (or 10 s have
 * passed) a check reads nothing. Undefined when the init is not (or no longer) the one
 * in pinFile's namespace.
 */
export function holdInit(pid: number, pinFile: string, unified?: string): InitHandle | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/statm`, 'r');
  } catch {
    return undefined;
  }
  let open = true;
  /** Nothing reported since lastRead found it alive. */
  let quiet = false;
  let lastRead = 0;
  let watcher: FSWatcher | undefined;
  const read = (): boolean => {
    try {
      return readSync(fd, statmBuffer, 0, statmBuffer.length, 0) > 0 && statmBuffer[0] !== DIGIT_ZERO;
    } catch {
      return false;
    }
  };
  const handle: InitHandle = {
    alive() {
      if (!open) return false;
      if (quiet && Date.now() - lastRead < WATCHED_REREAD_MS) return true;
      const alive = read();
      quiet = alive && watcher !== undefined;
      lastRead = Date.now();
      return alive;
    },
    get watched() {
      return watcher !== undefined;
    },
    close() {
      if (!open) return;
      open = false;
      quiet = false;
      watcher?.close();
      closeSync(fd);
    },
  };
  // The namespace check comes after the open: a process alive after both is the one checked.
  if (!inPinnedNamespaceSync(pid, pinFile) || !read()) {
    handle.close();
    return undefined;
  }
  if (unified) {
    watcher = watchOwnCgroup(pid, unified, () => (quiet = false));
    // A watch that failed tells nothing any more: every check reads again.
    watcher?.on('error', () => {
      quiet = false;
      watcher?.close();
      watcher = undefined;
    });
    // Set before this read: any change after it is reported.
    if (watcher && read()) {
      quiet = true;
      lastRead = Date.now();
    }
  }
  return handle;
}

/**
 * A watch of the cgroup.events of pid's own cgroup on the unified hierarchy, when pid is
 * the only process in it and it is populated (else its end might not change the file).
 */
function watchOwnCgroup(pid: number, unified: string, onChange: () => void): FSWatcher | undefined {
  let watcher: FSWatcher | undefined;
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    const path = line?.slice(3);
    if (!path || path === '/') return undefined;
    const dir = join(unified, path);
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() !== String(pid)) return undefined;
    const events = join(dir, 'cgroup.events');
    watcher = watch(events, { persistent: false }, onChange);
    if (!/^populated 1$/m.test(readFileSync(events, 'utf8'))) throw new Error('not populated');
    return watcher;
  } catch {
    watcher?.close();
    return undefined;
  }
}

async function isMounted(file: string): Promise<boolean> {
  return (await mountPoints()).has(file);
}

async function bindNamespace(nsLink: string, pinFile: string): Promise<void> {
  await runCommand('mount', ['--bind', nsLink, pinFile], "pinning the pod's PID namespace");
}

/** The first child of a process, 0 if none; read directly (procfs: no thread-pool round trips while the init comes up). */
function childOf(pid: number): number {
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    // gone meanwhile
  }
  return Number(text.trim().split(' ')[0]) || 0;
}

function exeOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return '';
  }
}
