// berth's cgroup naming scheme, in one place: each container's cgroup, and the cgroups
// of berth's helper processes (a container's conmon, a pod's PID namespace init), all
// under the pod's cgroup parent, or under /berth (berth.slice) for a pod that names none.
//
// With the cgroupfs driver these are paths. With the systemd driver they are runc's
// systemd form "SLICE:PREFIX:NAME", the transient scope PREFIX-NAME.scope in SLICE
// (runc --systemd-cgroup makes the container's; berth starts conmon and the pod init
// in theirs with systemd-run --scope).
import { basename, dirname, join } from 'node:path';
import type { CgroupDriver } from '../config/config.js';

/** Where a pod's containers and helpers go when the pod names no cgroup parent. */
export const DEFAULT_CGROUP_PARENT = '/berth';
/** The same with the systemd driver. */
export const DEFAULT_SLICE = 'berth.slice';

function parentOf(podCgroupPath: string): string {
  return podCgroupPath || DEFAULT_CGROUP_PARENT;
}

/** The slice of a pod whose cgroup path is podCgroupPath (the expanded slice path, or ''). */
function sliceOf(podCgroupPath: string): string {
  const last = basename(podCgroupPath);
  return last.endsWith('.slice') ? last : DEFAULT_SLICE;
}

/**
 * The cgroup path of a systemd slice, as systemd nests slices: "kubepods-burstable-pod1.slice"
 * lives in /kubepods.slice/kubepods-burstable.slice/; "-.slice" is the root.
 */
export function slicePath(slice: string): string {
  const name = slice.slice(0, -'.slice'.length);
  if (name === '-' || name === '') return '/';
  const parts = name.split('-');
  const path: string[] = [];
  for (let i = 1; i <= parts.length; i++) path.push(`${parts.slice(0, i).join('-')}.slice`);
  return `/${path.join('/')}`;
}

export interface SystemdCgroup {
  slice: string;
  prefix: string;
  name: string;
  /** The transient scope unit: PREFIX-NAME.scope. */
  unit: string;
}

/** runc's systemd form "SLICE:PREFIX:NAME", or undefined for a cgroupfs path. */
export function parseSystemdCgroup(cgroupsPath: string): SystemdCgroup | undefined {
  const m = /^([^/:]+\.slice):([^/:]+):([^/:]+)$/.exec(cgroupsPath);
  if (!m) return undefined;
  return { slice: m[1]!, prefix: m[2]!, name: m[3]!, unit: `${m[2]}-${m[3]}.scope` };
}

/** The cgroup directory (below a hierarchy's mount) that a cgroupsPath names, in either form. */
export function cgroupDir(cgroupsPath: string): string {
  const systemd = parseSystemdCgroup(cgroupsPath);
  if (!systemd) return cgroupsPath;
  return join(slicePath(systemd.slice), systemd.unit);
}

/** A container's cgroup (linux.cgroupsPath of its OCI spec). */
export function containerCgroup(podCgroupPath: string, containerId: string, driver: CgroupDriver = 'cgroupfs'): string {
  if (driver === 'systemd') return `${sliceOf(podCgroupPath)}:berth:${containerId}`;
  return `${parentOf(podCgroupPath)}/berth-${containerId}`;
}

/** conmon's own cgroup, beside its container's. */
export function monitorCgroup(containerCgroupsPath: string, containerId: string): string {
  const systemd = parseSystemdCgroup(containerCgroupsPath);
  if (systemd) return `${systemd.slice}:berth-conmon:${containerId}`;
  return join(dirname(containerCgroupsPath), `berth-conmon-${containerId}`);
}

/** The cgroup of a pod's PID namespace init (out of berthd's, under the pod's). */
export function podInitCgroup(podCgroupPath: string, podId: string, driver: CgroupDriver = 'cgroupfs'): string {
  if (driver === 'systemd') return `${sliceOf(podCgroupPath)}:berth-init:${podId}`;
  return `${parentOf(podCgroupPath)}/berth-init-${podId}`;
}
