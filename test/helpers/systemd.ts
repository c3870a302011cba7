// A real systemd for a test: Debian's systemd as PID 1 of new PID, mount, cgroup, UTS
// and IPC namespaces, in cgroups of its own below the test's, with a private /run (so
// its manager socket /run/systemd/private is its own) and only an empty target to
// reach. Commands run "inside" through nsenter (prefix()). Killing it ends every
// process of its PID namespace; its cgroups are then removed. Nothing of the host's
// changes: the mounts live in its mount namespace, the hostname in its UTS one.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, rmdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroupHierarchies } from '../../src/linux/cgroups.js';
import { run, type RunResult } from './processes.js';
import { cleanup } from './scope.js';
import { isRoot } from './paths.js';

export const SYSTEMD = '/lib/systemd/systemd';

export const systemdTestSkip = !isRoot ? 'needs root' : !existsSync(SYSTEMD) || !existsSync('/usr/bin/systemd-run') ? `systemd is needed (${SYSTEMD} and systemd-run: Debian's systemd package)` : false;

export interface TestSystemd {
  /** systemd's pid (in the test's PID namespace). */
  pid: number;
  /** The command prefix that runs a command in systemd's namespaces. */
  prefix(): string[];
  /** Runs a command there (e.g. systemctl). */
  run(command: string[]): Promise<RunResult>;
}

/** The test's own cgroup in a hierarchy, from /proc/self/cgroup. */
async function ownCgroup(controllers: string[], version: 1 | 2): Promise<string> {
  for (const line of (await readFile('/proc/self/cgroup', 'utf8')).split('\n')) {
    const [id, list, path] = line.split(':');
    if (path === undefined) continue;
    if (version === 2 ? id === '0' : list!.split(',').some((c) => controllers.includes(c))) return path;
  }
  return '/';
}

async function removeTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name));
  await rmdir(dir).catch(() => undefined);
}

export async function startSystemd(t: { after(fn: () => unknown): void }): Promise<TestSystemd> {
  const name = `berth-systemd-test-${randomBytes(4).toString('hex')}`;
  const hierarchies = await cgroupHierarchies();
  const dirs: string[] = [];
  const mounts: string[] = [];
  const unifiedOnly = hierarchies.length === 1 && hierarchies[0]!.mount === '/sys/fs/cgroup';
  for (const h of hierarchies) {
    const dir = join(h.mount, await ownCgroup(h.controllers, h.version), name);
    await mkdir(dir);
    dirs.push(dir);
    if (h.version === 1 && h.controllers.includes('cpuset')) {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) await writeFile(join(dir, file), await readFile(join(dir, '..', file)));
    }
    const options = h.controllers.every((c) => c.startsWith('name=')) ? `none,${h.controllers.join(',')}` : h.controllers.join(',');
    mounts.push(h.version === 2 ? `mkdir -p ${h.mount}; mount -t cgroup2 cgroup2 ${h.mount}` : `mkdir -p ${h.mount}; mount -t cgroup -o ${options} cgroup ${h.mount}`);
  }
  const inner = [
    'set -e',
    // Private /run: systemd's sockets and units are its own (berthd's state is under the test's temp dir).
    'mount -t tmpfs tmpfs /run',
    'mkdir -p /run/systemd/system',
    "printf '[Unit]\\nDescription=berth test target\\n' > /run/systemd/system/berth-test.target",
    'mount -t proc proc /proc',
    // The hierarchies again, rooted at the new cgroup namespace (systemd's root).
    ...(unifiedOnly ? [] : ['mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup']),
    ...mounts,
    'export container=berth-test',
    `exec ${SYSTEMD} --system --unit=berth-test.target --log-target=null`,
  ].join('\n');
  const outer = [
    'set -e',
    ...dirs.map((d) => `echo $$ > ${d}/cgroup.procs`),
    `exec unshare --pid --mount --cgroup --uts --ipc --fork --kill-child --propagation private bash -c '${inner.replace(/'/g, `'\\''`)}'`,
  ].join('\n');
  const child = spawn('bash', ['-c', outer], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  cleanup(t).after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // unshare --kill-child: its death takes systemd, and so the whole PID namespace.
      child.kill('SIGKILL');
      await exited;
    }
    for (let i = 0; i < 50; i++) {
      for (const dir of dirs) await removeTree(dir);
      if (!dirs.some((d) => existsSync(d))) return;
      await sleep(100);
    }
    process.stderr.write(`cannot remove the test systemd's cgroups: ${dirs.filter((d) => existsSync(d)).join(' ')}\n`);
  });
  // systemd: the child of unshare, once it runs systemd itself.
  let pid = 0;
  const until = Date.now() + 15_000;
  while (Date.now() < until && child.exitCode === null) {
    const kids = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '');
    const candidate = Number(kids.trim().split(/\s+/)[0] ?? 0);
    if (candidate > 0 && (await readFile(`/proc/${candidate}/comm`, 'utf8').catch(() => '')).trim() === 'systemd') {
      pid = candidate;
      break;
    }
    await sleep(20);
  }
  if (!pid) throw new Error(`the test systemd did not start: ${stderr.trim() || `exit ${child.exitCode}`}`);
  const prefix = () => ['nsenter', '-t', String(pid), '-p', '-m', '-C', '-u', '-i', '--'];
  const runIn = (command: string[]) => run(prefix()[0]!, [...prefix().slice(1), ...command]);
  while (Date.now() < until) {
    const state = (await runIn(['systemctl', 'is-system-running'])).stdout.trim();
    if (state === 'running' || state === 'degraded') return { pid, prefix, run: runIn };
    await sleep(50);
  }
  throw new Error(`the test systemd did not come up: ${stderr.trim()}`);
}
