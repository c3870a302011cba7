// The OCI runtime config.json of a container, from its spec, its pod and its image.
import { join } from 'node:path';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import type { ContainerSpec } from './container-types.js';

export interface ImageRuntimeConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** containerd's default capability set for non-privileged containers. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

const MASKED_PATHS = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/sys/devices/virtual/powercap', '/proc/scsi'];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The process args as the kubelet defines them: command over entrypoint, args over cmd. */
export function processArgs(spec: ContainerSpec, image: ImageRuntimeConfig): string[] {
  if (spec.command.length > 0) return [...spec.command, ...spec.args];
  return [...(image.Entrypoint ?? []), ...(spec.args.length > 0 ? spec.args : (image.Cmd ?? []))];
}

/** Image env under CRI env: a CRI variable replaces the image's of the same name. */
export function mergedEnv(spec: ContainerSpec, image: ImageRuntimeConfig, tty: boolean): string[] {
  const env = new Map<string, string>();
  for (const line of image.Env ?? []) {
    const eq = line.indexOf('=');
    env.set(eq < 0 ? line : line.slice(0, eq), eq < 0 ? '' : line.slice(eq + 1));
  }
  if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  if (tty) env.set('TERM', 'xterm');
  for (const [name, value] of spec.env) env.set(name, value);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

export interface OciSpecInput {
  id: string;
  spec: ContainerSpec;
  pod: SandboxRecord;
  image: ImageRuntimeConfig;
  user: ResolvedUser;
  rootfs: string;
  cgroupsPath: string;
  /** The lowest oom_score_adj this host lets berth set (containerd's restrict_oom_score_adj). */
  minOomScoreAdj: number;
  /** The linux.seccomp section, or undefined for none. */
  seccomp?: Record<string, unknown>;
}

export function buildOciSpec(input: OciSpecInput): Record<string, unknown> {
  const { spec, pod, image, user } = input;
  const caps = spec.privileged ? allCapabilities() : capabilitySet(spec.capAdd, spec.capDrop);
  const mounts: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', spec.privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', spec.privileged ? 'rw' : 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: join(pod.podDir, 'hostname'), options: ['rbind', 'rprivate', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: join(pod.podDir, 'hosts'), options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: join(pod.podDir, 'resolv.conf'), options: ['rbind', 'rprivate', 'rw'] },
    ...spec.mounts.map((m) => ({
      destination: m.containerPath,
      type: 'bind',
      source: m.hostPath,
      options: ['rbind', m.propagation, m.readonly ? 'ro' : 'rw'],
    })),
  ];
  const namespaces: Array<Record<string, string>> = [{ type: 'mount' }];
  if (pod.netns) namespaces.push({ type: 'network', path: pod.netns });
  if (pod.utsns) namespaces.push({ type: 'uts', path: pod.utsns });
  if (pod.ipcns) namespaces.push({ type: 'ipc', path: pod.ipcns });
  if (pod.spec.namespaces.pid !== 'node') namespaces.push({ type: 'pid' });

  const resources: Record<string, unknown> = { devices: [{ allow: false, access: 'rwm' }] };
  const cpu: Record<string, number> = {};
  if (spec.cpuShares > 0) cpu.shares = spec.cpuShares;
  if (spec.cpuQuota > 0) cpu.quota = spec.cpuQuota;
  if (spec.cpuPeriod > 0) cpu.period = spec.cpuPeriod;
  if (Object.keys(cpu).length > 0) resources.cpu = cpu;
  if (spec.memoryLimit > 0) resources.memory = { limit: spec.memoryLimit, swap: spec.memoryLimit };
  if (spec.privileged) resources.devices = [{ allow: true, access: 'rwm' }];

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: spec.tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args: processArgs(spec, image),
      env: mergedEnv(spec, image, spec.tty),
      cwd: spec.workingDir || image.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: spec.noNewPrivs,
      // Clamped, as containerd's restrict_oom_score_adj does: a host that forbids a lower
      // value than berthd's own would otherwise fail every pod.
      oomScoreAdj: Math.max(spec.oomScoreAdj, input.minOomScoreAdj),
    },
    root: { path: input.rootfs, readonly: spec.readonlyRootfs },
    hostname: pod.utsns ? pod.spec.hostname || pod.spec.name : undefined,
    mounts,
    annotations: { ...spec.annotations, 'io.kubernetes.cri.container-name': spec.name, 'io.kubernetes.cri.sandbox-id': pod.id },
    linux: {
      cgroupsPath: input.cgroupsPath,
      namespaces,
      resources,
      sysctl: pod.spec.sysctls,
      maskedPaths: spec.privileged ? [] : MASKED_PATHS,
      readonlyPaths: spec.privileged ? [] : READONLY_PATHS,
      ...(input.seccomp ? { seccomp: input.seccomp } : {}),
    },
  };
}

function normaliseCap(name: string): string {
  const upper = name.toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

function capabilitySet(add: string[], drop: string[]): string[] {
  let caps = new Set(DEFAULT_CAPABILITIES);
  if (add.map(normaliseCap).includes('CAP_ALL')) caps = new Set(allCapabilities());
  for (const c of add.map(normaliseCap)) if (c !== 'CAP_ALL') caps.add(c);
  if (drop.map(normaliseCap).includes('CAP_ALL')) caps.clear();
  for (const c of drop.map(normaliseCap)) caps.delete(c);
  return [...caps].sort();
}

function allCapabilities(): string[] {
  return [
    'CAP_AUDIT_CONTROL', 'CAP_AUDIT_READ', 'CAP_AUDIT_WRITE', 'CAP_BLOCK_SUSPEND', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE', 'CAP_CHOWN',
    'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_KILL', 'CAP_LEASE',
    'CAP_LINUX_IMMUTABLE', 'CAP_MAC_ADMIN', 'CAP_MAC_OVERRIDE', 'CAP_MKNOD', 'CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST',
    'CAP_NET_RAW', 'CAP_PERFMON', 'CAP_SETFCAP', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID', 'CAP_SYSLOG', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT',
    'CAP_SYS_CHROOT', 'CAP_SYS_MODULE', 'CAP_SYS_NICE', 'CAP_SYS_PACCT', 'CAP_SYS_PTRACE', 'CAP_SYS_RAWIO', 'CAP_SYS_RESOURCE',
    'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_WAKE_ALARM',
  ];
}
