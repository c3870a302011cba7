// Containers in berth's own terms (cri/ translates the CRI messages to these).
import type { SeccompChoice } from './seccomp.js';
export type ContainerState = 'created' | 'running' | 'exited' | 'unknown';

export interface ContainerMount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  propagation: 'private' | 'rslave' | 'rshared';
}

export interface ContainerSpec {
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
  runAsUser?: number;
  runAsGroup?: number;
  runAsUsername: string;
  supplementalGroups: number[];
  readonlyRootfs: boolean;
  privileged: boolean;
  noNewPrivs: boolean;
  capAdd: string[];
  capDrop: string[];
  /** CPU and memory limits (0: none). */
  cpuShares: number;
  cpuQuota: number;
  cpuPeriod: number;
  memoryLimit: number;
  oomScoreAdj: number;
  stopSignal: string;
  /** RuntimeDefault unless the request asks otherwise. */
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
}
