// The host operations a container is made with, as one interface the container
// manager is given: mount sources, device nodes, berthd's capabilities and
// oom_score_adj, conmon's cgroup. berthd gives it linuxContainerHost; unit tests give
// fakes (with a fake bundle store and OCI runtime), so the manager's logic runs without root.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { controllerAvailable, moveIntoCgroup, removeLeafCgroup } from '../linux/cgroups.js';
import { devicesFromPath, hostDevices, type DeviceNode } from '../linux/devices.js';
import { hostCapabilities } from '../linux/capabilities.js';
import { checkPropagationSource } from '../linux/mount-propagation.js';
import { criuStatus, type CriuStatus } from '../linux/criu.js';
import type { ContainerMount, ContainerSpec } from './container-types.js';

export type ContainerDeviceNode = DeviceNode & { permissions: string };

export interface ContainerHost {
  /** Missing host paths made (as directories), each source checked against its propagation. */
  prepareMountSources(mounts: ContainerMount[]): Promise<void>;
  devices(spec: ContainerSpec): Promise<ContainerDeviceNode[]>;
  hostCapabilities(): Promise<string[]>;
  ownOomScoreAdj(): Promise<number>;
  /** Whether hugepage limits can be set (the kubelet asks for them even where no hugetlb controller is). */
  hugetlbAvailable(): Promise<boolean>;
  moveIntoCgroup(path: string, pid: number): Promise<void>;
  removeLeafCgroup(path: string): Promise<void>;
  /** Whether a host path is a directory (a recursive read-only mount of a file is a plain bind). */
  isDirectory(path: string): Promise<boolean>;
  /** Whether CRIU works here (`criu check`), and what it said. */
  criu(): Promise<CriuStatus>;
}

export const linuxContainerHost: ContainerHost = {
  prepareMountSources,
  devices: containerDevices,
  hostCapabilities,
  ownOomScoreAdj,
  hugetlbAvailable: () => controllerAvailable('hugetlb'),
  moveIntoCgroup,
  removeLeafCgroup: (path) => removeLeafCgroup(path),
  isDirectory,
  criu: () => criuStatus(),
};

/**
 * A host path that does not exist is created as a directory, as containerd (and Docker)
 * do (a file stays a file); then each source must suit its propagation.
 */
async function prepareMountSources(mounts: ContainerMount[]): Promise<void> {
  for (const m of mounts) {
    if (!(await stat(m.hostPath).then(() => true, () => false))) await mkdir(m.hostPath, { recursive: true, mode: 0o755 });
  }
  for (const m of mounts) await checkPropagationSource(m.hostPath, m.propagation);
}

/** The device nodes a container gets; privileged: the host's too (its cgroup allows every device anyway). */
async function containerDevices(spec: ContainerSpec): Promise<ContainerDeviceNode[]> {
  const requested = (await Promise.all(spec.devices.map(async (d) => (await devicesFromPath(d.hostPath, d.containerPath)).map((node) => ({ ...node, permissions: d.permissions }))))).flat();
  return spec.privileged ? [...(await hostDevices()).map((d) => ({ ...d, permissions: 'rwm' })), ...requested] : requested;
}

/** A file has no submounts: a plain read-only bind is already all the way down. */
function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

/** berthd's own oom_score_adj: without CAP_SYS_RESOURCE nothing lower can be set. */
async function ownOomScoreAdj(): Promise<number> {
  return Number((await readFile('/proc/self/oom_score_adj', 'utf8').catch(() => '0')).trim()) || 0;
}
