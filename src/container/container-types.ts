// Containers in berth's own terms (cri/ translates the CRI messages to these).
import type { SeccompChoice } from './seccomp.js';
import type { NamespaceMode } from '../pod/sandbox-types.js';
export type ContainerState = 'created' | 'running' | 'exited' | 'unknown';

export interface ContainerMount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  /** Read-only all the way down, submounts included. */
  recursiveReadOnly?: boolean;
  propagation: 'private' | 'rslave' | 'rshared';
  /** An image volume: the image's rootfs, read-only, instead of hostPath (which is empty). */
  image?: ImageVolume;
}

export interface ImageVolume {
  /** What the caller named the image, and the image's id (set by CreateContainer). */
  image: string;
  imageId: string;
  /** A path inside the image to mount instead of its root; '' for the root. */
  subPath: string;
}

export interface ContainerDevice {
  containerPath: string;
  hostPath: string;
  /** Cgroup access: a subset of "rwm". */
  permissions: string;
}

export interface HugepageLimit {
  pageSize: string;
  limit: number;
}

/** Resources a container is created with and UpdateContainerResources changes. */
export interface ContainerResources {
  /** CPU and memory limits (0: none). */
  cpuShares: number;
  cpuQuota: number;
  cpuPeriod: number;
  memoryLimit: number;
  /** Memory plus swap; 0: the same as memoryLimit (no swap), as containerd does. */
  memorySwapLimit: number;
  cpusetCpus: string;
  cpusetMems: string;
  hugepageLimits: HugepageLimit[];
  /** cgroup v2 files, written as given. */
  unified: Record<string, string>;
}

export interface ContainerSpec extends ContainerResources {
  name: string;
  attempt: number;
  /** What the caller named the image, and the image's id. */
  image: string;
  imageId: string;
  command: string[];
  args: string[];
  workingDir: string;
  env: Array<[string, string]>;
  mounts: ContainerMount[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Relative to the pod's log directory, as the kubelet gives it. */
  logPath: string;
  tty: boolean;
  stdin: boolean;
  /** Close the container's stdin when the first attached client's stdin ends. */
  stdinOnce?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  runAsUsername: string;
  supplementalGroups: number[];
  readonlyRootfs: boolean;
  privileged: boolean;
  noNewPrivs: boolean;
  capAdd: string[];
  capDrop: string[];
  capAmbient: string[];
  /** Paths masked and made read-only inside; undefined: berth's defaults. */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  devices: ContainerDevice[];
  /** CDI devices by qualified name (`vendor.com/class=name`), from the CRI field and the cdi.k8s.io annotations. */
  cdiDevices?: string[];
  /** The container's PID namespace; undefined: the pod's mode. TARGET names a container. */
  pidMode?: NamespaceMode;
  pidTargetId: string;
  oomScoreAdj: number;
  stopSignal: string;
  /** As the request asks; none named is unconfined unless berthd is configured otherwise. */
  seccomp: SeccompChoice;
}

export interface ContainerRecord {
  id: string;
  podId: string;
  spec: ContainerSpec;
  state: ContainerState;
  /** Nanoseconds since the epoch as decimal strings (JSON has no int64); "0" when not yet. */
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  /** Absolute log file path, bundle dir, and the runtime handler it runs under. */
  logFile: string;
  bundle: string;
  runtime: string;
  pid: number;
  /** The container's cgroup (under its pod's parent). */
  cgroupsPath: string;
  /**
   * The chain IDs of the image snapshots its rootfs and image volumes are made of: image
   * garbage collection keeps them while the container exists, even once RemoveImage has
   * removed the image. Absent in records written before berth kept it (their image's are held).
   */
  snapshots?: string[];
}
