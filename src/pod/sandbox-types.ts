// Pod sandboxes in berth's own terms (cri/ translates the CRI messages to these).
import type { CgroupLimits } from '../linux/cgroup-limits.js';
export type NamespaceMode = 'pod' | 'container' | 'node' | 'target';
export type SandboxState = 'creating' | 'ready' | 'notready';

export interface PortMapping {
  protocol: 'tcp' | 'udp' | 'sctp';
  containerPort: number;
  hostPort: number;
  hostIp: string;
}

import type { IdMapping, UserNamespaceSpec } from '../linux/namespaces.js';
export type { IdMapping, UserNamespaceSpec };

export interface SandboxSpec {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
  /** Never empty for a pod made now: the request's, or the node's (cri/sandbox-translate's podHostname). */
  hostname: string;
  logDirectory: string;
  dns?: { servers: string[]; searches: string[]; options: string[] };
  portMappings: PortMapping[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** From the bandwidth annotations, bits per second (parsed by the translation; absent in records of older berthd). */
  bandwidth?: { ingress?: number; egress?: number };
  cgroupParent: string;
  namespaces: { network: NamespaceMode; pid: NamespaceMode; ipc: NamespaceMode; targetId: string };
  /** The pod's own user namespace (mode POD) with these mappings; absent: the host's. */
  userns?: UserNamespaceSpec;
  sysctls: Record<string, string>;
  runtimeHandler: string;
}

export interface SandboxRecord {
  id: string;
  spec: SandboxSpec;
  state: SandboxState;
  /** Nanoseconds since the epoch, as a decimal string (JSON has no int64). */
  createdAt: string;
  /** Pinned namespace files; absent for namespaces shared with the host. */
  netns?: string;
  utsns?: string;
  ipcns?: string;
  /** The pod's user namespace pin (its network, UTS, IPC and PID namespaces are owned by it). */
  userns?: string;
  /** The pod-wide PID namespace (mode POD) and the host pid of its init (catatonit). */
  pidns?: string;
  pidInit?: number;
  /** The pod network, when the pod has its own network namespace. */
  network?: { name: string; ifName: string; ips: string[] };
  /** Directory of the pod's hostname, hosts and resolv.conf. */
  podDir: string;
  /** The cgroup path containers go under, and the directories berth made for it. */
  cgroupPath: string;
  cgroupsCreated: string[];
  /** The pod-level resources of the last UpdatePodSandboxResources, and whether berth wrote them to the pod's cgroup. */
  resources?: { overhead: CgroupLimits; resources: CgroupLimits; appliedToCgroup: boolean };
}

/**
 * What a container needs from its pod, answered by the sandbox manager as one typed
 * value: the pod's namespaces to join, the files to bind, the cgroup parent, sysctls.
 */
export interface PodContext {
  id: string;
  /** The pod's hostname (HOSTNAME in every container; the OCI hostname with the pod's own UTS namespace). */
  hostname: string;
  /** Pinned namespace files to join; absent: the host's. pid is the pod-wide PID namespace (mode POD). */
  namespaces: { network?: string; uts?: string; ipc?: string; pid?: string; user?: string };
  /** The user namespace's mappings, when the pod has its own. */
  userns?: UserNamespaceSpec;
  /** The pod's PID namespace mode (what a container without its own gets). */
  pidMode: NamespaceMode;
  /** Bound into every container: hostname, hosts, resolv.conf, and /dev/shm with the pod's own IPC namespace. */
  files: { hostname: string; hosts: string; resolvConf: string; shm?: string };
  /** The cgroup path containers go under ('' when the pod named none). */
  cgroupParent: string;
  sysctls: Record<string, string>;
  logDirectory: string;
  runtimeHandler: string;
}
