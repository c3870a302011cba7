// CRI container messages to berth's container types and back.
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  ContainerState as CriState,
  MountPropagation,
  SecurityProfile_ProfileType,
  Signal,
  type ContainerConfig,
  type LinuxContainerSecurityContext,
  type ContainerSchema,
  type ContainerStatusSchema,
} from '../gen/runtime/v1/api_pb.js';
import { invalidArgument } from '../errors.js';
import type { ContainerMount, ContainerRecord, ContainerSpec, ContainerState } from '../container/container-types.js';
import type { SeccompChoice } from '../container/seccomp.js';

const propagations: Record<MountPropagation, ContainerMount['propagation']> = {
  [MountPropagation.PROPAGATION_PRIVATE]: 'private',
  [MountPropagation.PROPAGATION_HOST_TO_CONTAINER]: 'rslave',
  [MountPropagation.PROPAGATION_BIDIRECTIONAL]: 'rshared',
};

export function containerSpecFrom(config: ContainerConfig | undefined): ContainerSpec {
  if (!config) throw invalidArgument('CreateContainer: config is required');
  if (!config.metadata?.name) throw invalidArgument('CreateContainer: config.metadata.name is required');
  if (!config.image?.image) throw invalidArgument('CreateContainer: config.image.image is required');
  const security = config.linux?.securityContext;
  const resources = config.linux?.resources;
  return {
    name: config.metadata.name,
    attempt: config.metadata.attempt,
    image: config.image.image,
    imageId: '',
    command: config.command,
    args: config.args,
    workingDir: config.workingDir,
    // The reference proto types the value as bytes (wire-identical to a string): UTF-8.
    env: config.envs.map((e): [string, string] => [e.key, Buffer.from(e.value).toString('utf8')]),
    mounts: config.mounts.map((m) => ({
      containerPath: m.containerPath,
      hostPath: m.hostPath,
      readonly: m.readonly,
      propagation: propagations[m.propagation] ?? 'private',
    })),
    labels: { ...config.labels },
    annotations: { ...config.annotations },
    logPath: config.logPath,
    tty: config.tty,
    stdin: config.stdin,
    runAsUser: security?.runAsUser ? Number(security.runAsUser.value) : undefined,
    runAsGroup: security?.runAsGroup ? Number(security.runAsGroup.value) : undefined,
    runAsUsername: security?.runAsUsername ?? '',
    supplementalGroups: (security?.supplementalGroups ?? []).map(Number),
    readonlyRootfs: security?.readonlyRootfs ?? false,
    privileged: security?.privileged ?? false,
    noNewPrivs: security?.noNewPrivs ?? false,
    capAdd: security?.capabilities?.addCapabilities ?? [],
    capDrop: security?.capabilities?.dropCapabilities ?? [],
    cpuShares: Number(resources?.cpuShares ?? 0n),
    cpuQuota: Number(resources?.cpuQuota ?? 0n),
    cpuPeriod: Number(resources?.cpuPeriod ?? 0n),
    memoryLimit: Number(resources?.memoryLimitInBytes ?? 0n),
    oomScoreAdj: Number(resources?.oomScoreAdj ?? 0n),
    stopSignal: config.stopSignal ? Signal[config.stopSignal] : '',
    seccomp: seccompChoice(security),
  };
}

/** RuntimeDefault unless asked otherwise (also when the request names no profile). */
function seccompChoice(security: LinuxContainerSecurityContext | undefined): SeccompChoice {
  const profile = security?.seccomp;
  if (profile) {
    if (profile.profileType === SecurityProfile_ProfileType.Unconfined) return { type: 'unconfined' };
    if (profile.profileType === SecurityProfile_ProfileType.Localhost) {
      if (!profile.localhostRef.startsWith('/')) throw invalidArgument(`seccomp localhost profile "${profile.localhostRef}" must be an absolute path`);
      return { type: 'localhost', path: profile.localhostRef };
    }
    return { type: 'runtime-default' };
  }
  const legacy = security?.seccompProfilePath ?? '';
  if (legacy === 'unconfined') return { type: 'unconfined' };
  if (legacy.startsWith('localhost/')) return { type: 'localhost', path: legacy.slice('localhost'.length) };
  return { type: 'runtime-default' };
}

export const criContainerStates: Record<ContainerState, CriState> = {
  created: CriState.CONTAINER_CREATED,
  running: CriState.CONTAINER_RUNNING,
  exited: CriState.CONTAINER_EXITED,
  unknown: CriState.CONTAINER_UNKNOWN,
};

export function toCriContainer(record: ContainerRecord): MessageInitShape<typeof ContainerSchema> {
  return {
    id: record.id,
    podSandboxId: record.podId,
    metadata: { name: record.spec.name, attempt: record.spec.attempt },
    image: { image: record.spec.image },
    imageRef: record.spec.imageId,
    imageId: record.spec.imageId,
    state: criContainerStates[record.state],
    createdAt: BigInt(record.createdAt),
    labels: record.spec.labels,
    annotations: record.spec.annotations,
  };
}

export function toCriContainerStatus(record: ContainerRecord): MessageInitShape<typeof ContainerStatusSchema> {
  return {
    id: record.id,
    metadata: { name: record.spec.name, attempt: record.spec.attempt },
    state: criContainerStates[record.state],
    createdAt: BigInt(record.createdAt),
    startedAt: BigInt(record.startedAt),
    finishedAt: BigInt(record.finishedAt),
    exitCode: record.exitCode,
    image: { image: record.spec.image },
    imageRef: record.spec.imageId,
    imageId: record.spec.imageId,
    reason: record.reason,
    message: record.message,
    labels: record.spec.labels,
    annotations: record.spec.annotations,
    mounts: record.spec.mounts.map((m) => ({
      containerPath: m.containerPath,
      hostPath: m.hostPath,
      readonly: m.readonly,
      propagation: m.propagation === 'rslave' ? MountPropagation.PROPAGATION_HOST_TO_CONTAINER : m.propagation === 'rshared' ? MountPropagation.PROPAGATION_BIDIRECTIONAL : MountPropagation.PROPAGATION_PRIVATE,
    })),
    logPath: record.logFile,
  };
}
