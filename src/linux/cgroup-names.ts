// berth's cgroup naming scheme, in one place: each container's cgroup, and the cgroups
// of berth's helper processes (a container's conmon, a pod's PID namespace init), all
// under the pod's cgroup parent, or under /berth for a pod that names none.
import { dirname, join } from 'node:path';

/** Where a pod's containers and helpers go when the pod names no cgroup parent. */
export const DEFAULT_CGROUP_PARENT = '/berth';

function parentOf(podCgroupPath: string): string {
  return podCgroupPath || DEFAULT_CGROUP_PARENT;
}

/** A container's cgroup (linux.cgroupsPath of its OCI spec). */
export function containerCgroup(podCgroupPath: string, containerId: string): string {
  return `${parentOf(podCgroupPath)}/berth-${containerId}`;
}

/** conmon's own cgroup, beside its container's. */
export function monitorCgroup(containerCgroupsPath: string, containerId: string): string {
  return join(dirname(containerCgroupsPath), `berth-conmon-${containerId}`);
}

/** The cgroup of a pod's PID namespace init (out of berthd's, under the pod's). */
export function podInitCgroup(podCgroupPath: string, podId: string): string {
  return `${parentOf(podCgroupPath)}/berth-init-${podId}`;
}
