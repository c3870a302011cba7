// The host tools a pod with one container is made of, run alone with no runtime daemon
// (for bench/raw-parts and bench/cri-calls --raw): `ip netns add` + the pod network's CNI
// plugins' ADD (as libcni chains them), the overlay mount, `runc create` + `runc start`
// of a busybox bundle in that netns, and the way down.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rmdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tempDir } from '../test/helpers/tmp.js';
import type { Scope } from './harness.js';

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface ExecOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** stdio of a command whose children keep it (runc create hands its own to the container). */
  stdio?: 'ignore';
}

function exec(command: string, args: string[], options: ExecOptions = {}): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: options.stdio ?? ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on(options.stdio ? 'exit' : 'close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

async function must(command: string, args: string[], options: ExecOptions = {}): Promise<string> {
  const result = await exec(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: exit ${result.code}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** One CNI plugin call, as libcni makes it (the conf on stdin, CNI_* in the environment). */
function cni(plugin: string, command: 'ADD' | 'DEL', id: string, netns: string, conf: object): Promise<string> {
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: 'IgnoreUnknown=1' };
  return must(join('/usr/lib/cni', plugin), [], { input: JSON.stringify(conf), env });
}

type Timed = <T>(name: string, step: () => Promise<T>) => Promise<T>;

/** The step names, in order; `RAW_UP` and `RAW_DOWN` are those of a start and a stop. */
export const RAW_UP = ['pod: ip netns add + CNI ADD', 'overlay mount', 'runc create + start'];
export const RAW_DOWN = ['runc kill + delete', 'umount', 'pod down: CNI DEL + ip netns del'];

export class RawHost {
  private constructor(
    private readonly scope: Scope,
    private readonly dir: string,
    private readonly lower: string,
    private readonly runcRoot: string,
    private readonly list: { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> },
  ) {}

  /** A busybox rootfs as the lower dir, the CNI config list of confDir (its first file). */
  static async create(scope: Scope, confDir: string): Promise<RawHost> {
    const [file] = (await readdir(confDir)).sort();
    const list = JSON.parse(await readFile(join(confDir, file!), 'utf8')) as RawHost['list'];
    const dir = await tempDir(scope, 'raw-parts-');
    const lower = join(dir, 'lower');
    await mkdir(join(lower, 'bin'), { recursive: true });
    for (const d of ['proc', 'sys', 'dev', 'etc', 'tmp']) await mkdir(join(lower, d));
    await copyFile('/bin/busybox', join(lower, 'bin', 'busybox'));
    await symlink('busybox', join(lower, 'bin', 'sleep'));
    // runc removes each container's cgroup; their parent goes at the end, in every hierarchy.
    scope.after(async () => {
      for (const hierarchy of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) await rmdir(join('/sys/fs/cgroup', hierarchy, 'raw-parts')).catch(() => undefined);
      await rmdir('/sys/fs/cgroup/raw-parts').catch(() => undefined);
    });
    return new RawHost(scope, dir, lower, join(dir, 'runc'), list);
  }

  /** One pod with one container, up and down, each step timed under its name (RAW_UP, RAW_DOWN). */
  async iteration(timed: Timed): Promise<void> {
    const { scope, dir, lower, runcRoot, list } = this;
    const id = `raw-${randomBytes(4).toString('hex')}`;
    const bundle = join(dir, id);
    await mkdir(bundle);
    await must('runc', ['spec', '--bundle', bundle]);
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { terminal: boolean; args: string[] }; root: { path: string; readonly: boolean }; linux: { namespaces: Array<{ type: string; path?: string }>; cgroupsPath?: string } };
    spec.process.terminal = false;
    spec.process.args = ['sleep', '3600'];
    spec.root = { path: join(bundle, 'rootfs'), readonly: false };
    spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: `/var/run/netns/${id}` } : n));
    spec.linux.cgroupsPath = `/raw-parts/${id}`;
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    for (const d of ['rootfs', 'upper', 'work']) await mkdir(join(bundle, d));
    // Whatever a failure leaves of this iteration goes (each step is a no-op when done).
    scope.after(async () => {
      await exec('runc', ['--root', runcRoot, 'delete', '--force', id]);
      await exec('umount', [join(bundle, 'rootfs')]);
      await exec('ip', ['netns', 'del', id]);
    });
    const pod = await timed('pod: ip netns add + CNI ADD', async () => {
      await must('ip', ['netns', 'add', id]);
      let prevResult: unknown;
      for (const plugin of list.plugins) {
        const conf = { cniVersion: list.cniVersion, name: list.name, ...plugin, ...(prevResult ? { prevResult } : {}), ...(plugin.type === 'portmap' ? { runtimeConfig: { portMappings: [] } } : {}) };
        prevResult = JSON.parse(await cni(plugin.type as string, 'ADD', id, `/var/run/netns/${id}`, conf));
      }
      return prevResult;
    });
    await timed('overlay mount', () => must('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(bundle, 'upper')},workdir=${join(bundle, 'work')}`, join(bundle, 'rootfs')]));
    await timed('runc create + start', async () => {
      await must('runc', ['--root', runcRoot, 'create', '--bundle', bundle, id], { stdio: 'ignore' });
      await must('runc', ['--root', runcRoot, 'start', id]);
    });
    await timed('runc kill + delete', async () => {
      await must('runc', ['--root', runcRoot, 'kill', id, 'KILL']);
      // delete refuses a container still running: wait for the kill to land.
      for (let tries = 0; tries < 200; tries++) {
        const state = JSON.parse(await must('runc', ['--root', runcRoot, 'state', id])) as { status: string };
        if (state.status === 'stopped') break;
        await new Promise((r) => setTimeout(r, 2));
      }
      await must('runc', ['--root', runcRoot, 'delete', id]);
    });
    await timed('umount', () => must('umount', [join(bundle, 'rootfs')]));
    await timed('pod down: CNI DEL + ip netns del', async () => {
      for (const plugin of [...list.plugins].reverse()) {
        const conf = { cniVersion: list.cniVersion, name: list.name, ...plugin, prevResult: pod, ...(plugin.type === 'portmap' ? { runtimeConfig: { portMappings: [] } } : {}) };
        await cni(plugin.type as string, 'DEL', id, `/var/run/netns/${id}`, conf);
      }
      await must('ip', ['netns', 'del', id]);
    });
  }
}
