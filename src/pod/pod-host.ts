// The host operations a pod sandbox is made of, as one interface the sandbox manager is
// given: pinned namespaces, the PID namespace init, cgroups, the loopback device, the
// pod's files and mounts. berthd gives it linuxPodHost; unit tests give fakes, so the
// manager's own logic (reservations, undo on failure, teardown order) runs without root.
import { applyCgroupLimits, type CgroupLimits } from '../linux/cgroup-limits.js';
import { cgroupHierarchies, ensureCgroup, moveIntoCgroup, removeCgroups, removeLeafCgroup } from '../linux/cgroups.js';
import { isPinned, pinNamespaces, unpinNamespaces, type PinnableNamespace, type UserNamespaceSpec } from '../linux/namespaces.js';
import { preparePrivateDir, removeUnmounted } from '../linux/mount-table.js';
import { holdInit, inPinnedNamespace, prepareInfraRoot, startPidNamespace, stopPidNamespace, type InitHandle } from '../linux/pid-namespace.js';
import { bringUpLoopback } from '../network/loopback.js';
import { mountPodShm, unmountPodShm, writePodFiles, type DnsSettings } from './pod-files.js';

export interface PodHost {
  preparePrivateDir(dir: string): Promise<void>;
  prepareInfraRoot(dir: string, catatonit: string): Promise<void>;
  /**
   * Makes and pins the namespaces and sets the hostname. True when a new netns's `lo` came
   * up with them; otherwise it is the caller's (bringUpLoopback).
   */
  pinNamespaces(files: Partial<Record<PinnableNamespace, string>>, hostname?: string, userns?: { file: string } & UserNamespaceSpec): Promise<boolean | void>;
  unpinNamespaces(files: Array<string | undefined>): Promise<void>;
  isPinned(file: string): Promise<boolean>;
  /** `userns`: the pod's user namespace; `prefix`: a command the init is started through (systemd-run --scope …). */
  startPidNamespace(pinFile: string, infraRoot: string, userns?: string, prefix?: string[]): Promise<number>;
  stopPidNamespace(pinFile: string | undefined, init: number | undefined): Promise<void>;
  inPinnedNamespace(pid: number, pinFile: string): Promise<boolean>;
  /**
   * The init of a pod's PID namespace held open once found in it (a check is then one
   * read, or none while its cgroup's watch is quiet; see holdInit). Absent (fakes): every
   * check is inPinnedNamespace.
   */
  holdInit?(pid: number, pinFile: string): Promise<InitHandle | undefined>;
  ensureCgroup(path: string): Promise<string[]>;
  moveIntoCgroup(path: string, pid: number): Promise<void>;
  /** Removes what was made for a pod's cgroup; busy shared ancestors of `leaf` stay. */
  removeCgroups(dirs: string[], leaf?: string): Promise<void>;
  removeLeafCgroup(path: string): Promise<void>;
  applyCgroupLimits(path: string, limits: CgroupLimits): Promise<void>;
  bringUpLoopback(netns: string): Promise<void>;
  mountPodShm(podDir: string): Promise<void>;
  unmountPodShm(podDir: string): Promise<void>;
  writePodFiles(podDir: string, hostname: string, ips: string[], dns: DnsSettings | undefined): Promise<unknown>;
  /** Removes trees with nothing mounted below; with `trash`, renamed there and deleted in the background. */
  removeUnmounted(dirs: string[], options?: { trash?: string }): Promise<void>;
}

export const linuxPodHost: PodHost = {
  preparePrivateDir,
  prepareInfraRoot,
  pinNamespaces,
  unpinNamespaces,
  isPinned,
  startPidNamespace,
  stopPidNamespace,
  inPinnedNamespace,
  holdInit: async (pid, pinFile) => holdInit(pid, pinFile, (await cgroupHierarchies()).find((h) => h.version === 2)?.mount),
  ensureCgroup,
  moveIntoCgroup,
  removeCgroups,
  removeLeafCgroup: (path) => removeLeafCgroup(path),
  applyCgroupLimits,
  bringUpLoopback,
  mountPodShm,
  unmountPodShm,
  writePodFiles: (podDir, hostname, ips, dns) => writePodFiles(podDir, hostname, ips, dns),
  removeUnmounted,
};
