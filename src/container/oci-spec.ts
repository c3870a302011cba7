// The OCI runtime config.json of a container, from its spec, its pod and its image.
import type { PodContext } from '../pod/sandbox-types.js';
import type { ContainerMount, ContainerResources, ContainerSpec } from './container-types.js';
import type { DeviceNode } from '../linux/devices.js';
import { rootfsPropagationFor } from '../linux/mount-propagation.js';
import type { ImageRuntimeConfig } from '../image/manifest.js';

export type { ImageRuntimeConfig };

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

/**
 * Image env under CRI env: a CRI variable replaces the image's of the same name. Under
 * both, as containerd sets it, HOSTNAME is the pod's hostname.
 */
export function mergedEnv(spec: ContainerSpec, image: ImageRuntimeConfig, tty: boolean, hostname = ''): string[] {
  const env = new Map<string, string>();
  if (hostname) env.set('HOSTNAME', hostname);
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
  pod: PodContext;
  image: ImageRuntimeConfig;
  user: ResolvedUser;
  rootfs: string;
  cgroupsPath: string;
  /** The lowest oom_score_adj this host lets berth set (containerd's restrict_oom_score_adj). */
  minOomScoreAdj: number;
  /** The linux.seccomp section, or undefined for none. */
  seccomp?: Record<string, unknown>;
  /** Device nodes and the cgroup access each gets. */
  devices: Array<DeviceNode & { permissions: string }>;
  /** The CRI mounts with the sources to bind (recursive read-only ones are prepared trees). */
  mounts?: ContainerMount[];
  /** What "ALL" and privileged grant: the capabilities berthd itself holds. */
  hostCapabilities: string[];
  /** Whether the host has a usable hugetlb controller (default: assumed). */
  hugetlb?: boolean;
  /** The PID namespace: undefined for the host's, {} for a new one, a path to join one. */
  pidNamespace?: { path?: string };
}

/**
 * The OCI linux.resources of a container (also what `runc update -r` takes). Without a
 * hugetlb controller on the host, hugepage limits are left out, as containerd's
 * `tolerate_missing_hugetlb_controller` (its default) does: the kubelet asks for a limit
 * of each page size the kernel has, and runc refuses any on a host without the controller.
 */
export function ociResources(spec: ContainerResources, host: { hugetlb?: boolean } = {}): Record<string, unknown> {
  const resources: Record<string, unknown> = {};
  const cpu: Record<string, unknown> = {};
  if (spec.cpuShares > 0) cpu.shares = spec.cpuShares;
  if (spec.cpuQuota > 0) cpu.quota = spec.cpuQuota;
  if (spec.cpuPeriod > 0) cpu.period = spec.cpuPeriod;
  if (spec.cpusetCpus) cpu.cpus = spec.cpusetCpus;
  if (spec.cpusetMems) cpu.mems = spec.cpusetMems;
  if (Object.keys(cpu).length > 0) resources.cpu = cpu;
  // No swap unless asked, as containerd does: swap equal to the limit.
  if (spec.memoryLimit > 0) resources.memory = { limit: spec.memoryLimit, swap: spec.memorySwapLimit > 0 ? spec.memorySwapLimit : spec.memoryLimit };
  if (spec.hugepageLimits.length > 0 && host.hugetlb !== false) resources.hugepageLimits = spec.hugepageLimits.map((h) => ({ pageSize: h.pageSize, limit: h.limit }));
  if (Object.keys(spec.unified).length > 0) resources.unified = spec.unified;
  return resources;
}

/**
 * A container's resources after UpdateContainerResources: what the update leaves unset
 * (0 or empty) keeps its current value; a new memory limit without a swap limit means
 * no swap again.
 */
export function mergeResources(current: Partial<ContainerResources>, update: ContainerResources): ContainerResources {
  return {
    cpuShares: update.cpuShares || (current.cpuShares ?? 0),
    cpuQuota: update.cpuQuota || (current.cpuQuota ?? 0),
    cpuPeriod: update.cpuPeriod || (current.cpuPeriod ?? 0),
    memoryLimit: update.memoryLimit || (current.memoryLimit ?? 0),
    memorySwapLimit: update.memorySwapLimit || (update.memoryLimit ? 0 : (current.memorySwapLimit ?? 0)),
    cpusetCpus: update.cpusetCpus || (current.cpusetCpus ?? ''),
    cpusetMems: update.cpusetMems || (current.cpusetMems ?? ''),
    hugepageLimits: update.hugepageLimits.length > 0 ? update.hugepageLimits : (current.hugepageLimits ?? []),
    unified: Object.keys(update.unified).length > 0 ? update.unified : (current.unified ?? {}),
  };
}

export function buildOciSpec(input: OciSpecInput): Record<string, unknown> {
  const { spec, pod, image, user } = input;
  const caps = spec.privileged ? input.hostCapabilities : capabilitySet(spec.capAdd, spec.capDrop, input.hostCapabilities);
  const podFiles = pod.files;
  const binds = input.mounts ?? spec.mounts;
  const rootfsPropagation = rootfsPropagationFor(binds.map((m) => m.propagation));
  const mounts: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    // The pod's /dev/shm with its IPC namespace; the host's with the host's.
    { destination: '/dev/shm', type: 'bind', source: podFiles.shm ?? '/dev/shm', options: ['rbind', 'rprivate', 'nosuid', 'noexec', 'nodev', 'rw'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', spec.privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', spec.privileged ? 'rw' : 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: podFiles.hostname, options: ['rbind', 'rprivate', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: podFiles.hosts, options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: podFiles.resolvConf, options: ['rbind', 'rprivate', 'rw'] },
    ...binds.map((m) => ({
      destination: m.containerPath,
      type: 'bind',
      source: m.hostPath,
      // Private all the way down, as containerd's rprivate: submounts of the source too.
      options: ['rbind', m.propagation === 'private' ? 'rprivate' : m.propagation, m.readonly ? 'ro' : 'rw'],
    })),
  ];
  const namespaces: Array<Record<string, string>> = [{ type: 'mount' }];
  if (pod.namespaces.network) namespaces.push({ type: 'network', path: pod.namespaces.network });
  if (pod.namespaces.uts) namespaces.push({ type: 'uts', path: pod.namespaces.uts });
  if (pod.namespaces.ipc) namespaces.push({ type: 'ipc', path: pod.namespaces.ipc });
  if (input.pidNamespace) namespaces.push({ type: 'pid', ...input.pidNamespace });
  // The pod's user namespace, joined by path; runc 1.1 still wants its maps (for the
  // ids it sets up /dev and the rootfs with), which must be the namespace's own.
  if (pod.namespaces.user) namespaces.push({ type: 'user', path: pod.namespaces.user });
  const idMappings = (list: Array<{ containerId: number; hostId: number; length: number }>) => list.map((m) => ({ containerID: m.containerId, hostID: m.hostId, size: m.length }));

  const resources: Record<string, unknown> = {
    ...ociResources(spec, { hugetlb: input.hugetlb }),
    devices: spec.privileged
      ? [{ allow: true, access: 'rwm' }]
      : [{ allow: false, access: 'rwm' }, ...input.devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions }))],
  };

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: spec.tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args: processArgs(spec, image),
      env: mergedEnv(spec, image, spec.tty, pod.hostname),
      cwd: spec.workingDir || image.WorkingDir || '/',
      capabilities: capabilitiesOf(caps, spec.capAmbient.map(normaliseCap)),
      noNewPrivileges: spec.noNewPrivs,
      // Clamped, as containerd's restrict_oom_score_adj does: a host that forbids a lower
      // value than berthd's own would otherwise fail every pod.
      oomScoreAdj: Math.max(spec.oomScoreAdj, input.minOomScoreAdj),
    },
    root: { path: input.rootfs, readonly: spec.readonlyRootfs },
    // The pod's (decided once, by the CRI translation); none for a pod recorded without one.
    hostname: pod.namespaces.uts && pod.hostname ? pod.hostname : undefined,
    mounts,
    annotations: { ...spec.annotations, 'io.kubernetes.cri.container-name': spec.name, 'io.kubernetes.cri.sandbox-id': pod.id },
    linux: {
      cgroupsPath: input.cgroupsPath,
      // Without rshared runc makes the container's mounts slaves of the host's, so
      // nothing mounted inside a bidirectional mount would reach the host.
      ...(rootfsPropagation ? { rootfsPropagation } : {}),
      namespaces,
      ...(pod.namespaces.user && pod.userns ? { uidMappings: idMappings(pod.userns.uids), gidMappings: idMappings(pod.userns.gids) } : {}),
      resources,
      devices: input.devices.map(({ permissions: _access, ...node }) => node),
      sysctl: pod.sysctls,
      maskedPaths: spec.privileged ? [] : (spec.maskedPaths ?? MASKED_PATHS),
      readonlyPaths: spec.privileged ? [] : (spec.readonlyPaths ?? READONLY_PATHS),
      ...(input.seccomp ? { seccomp: input.seccomp } : {}),
    },
  };
}

/**
 * Ambient capabilities must also be inheritable and permitted, or the kernel drops them;
 * only those the container has at all qualify (an ambient request never re-adds a drop).
 */
function capabilitiesOf(caps: string[], ambientRequest: string[]): Record<string, string[]> {
  const ambient = ambientRequest.filter((c) => caps.includes(c));
  if (ambient.length === 0) return { bounding: caps, effective: caps, permitted: caps };
  return { bounding: caps, effective: caps, permitted: caps, inheritable: ambient, ambient };
}

function normaliseCap(name: string): string {
  const upper = name.toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

function capabilitySet(add: string[], drop: string[], all: string[]): string[] {
  let caps = new Set(DEFAULT_CAPABILITIES);
  if (add.map(normaliseCap).includes('CAP_ALL')) caps = new Set(all);
  for (const c of add.map(normaliseCap)) if (c !== 'CAP_ALL') caps.add(c);
  if (drop.map(normaliseCap).includes('CAP_ALL')) caps.clear();
  for (const c of drop.map(normaliseCap)) caps.delete(c);
  return [...caps].sort();
}
