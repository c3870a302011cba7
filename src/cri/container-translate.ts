// CRI container messages to berth's container types and back.
import { isAbsolute } from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  ContainerState as CriState,
  MountPropagation,
  Signal,
  type ContainerConfig,
  type LinuxContainerResources,
  type LinuxContainerResourcesSchema,
  type ContainerSchema,
  type ContainerStatusSchema,
} from '../gen/runtime/v1/api_pb.js';
import { invalidArgument } from '../errors.js';
import type { ContainerMount, ContainerRecord, ContainerResources, ContainerSpec, ContainerState } from '../container/container-types.js';
import { namespaceModeFrom } from './sandbox-translate.js';
import type { SeccompChoice } from '../container/seccomp.js';
import { checkRunAsGroup, seccompChoiceFrom } from './security-translate.js';
import { checkSubPath } from '../container/image-volumes.js';
import { requestedCdiDevices } from '../container/cdi.js';

export interface ContainerTranslateOptions {
  /**
   * berth's RuntimeDefault profile for a container whose request names no seccomp
   * profile (berthd's seccomp_use_default_when_empty); otherwise such a container runs
   * unconfined, as the CRI defines it.
   */
  seccompDefaultWhenEmpty?: boolean;
}

const propagations: Record<MountPropagation, ContainerMount['propagation']> = {
  [MountPropagation.PROPAGATION_PRIVATE]: 'private',
  [MountPropagation.PROPAGATION_HOST_TO_CONTAINER]: 'rslave',
  [MountPropagation.PROPAGATION_BIDIRECTIONAL]: 'rshared',
};

export function containerSpecFrom(config: ContainerConfig | undefined, options: ContainerTranslateOptions = {}): ContainerSpec {
  if (!config) throw invalidArgument('CreateContainer: config is required');
  if (!config.metadata?.name) throw invalidArgument('CreateContainer: config.metadata.name is required');
  if (!config.image?.image) throw invalidArgument('CreateContainer: config.image.image is required');
  const security = config.linux?.securityContext;
  checkRunAsGroup(security?.runAsGroup, security?.runAsUser, security?.runAsUsername ?? '');
  const whenEmpty: SeccompChoice = options.seccompDefaultWhenEmpty ? { type: 'runtime-default' } : { type: 'unconfined' };
  const seccomp = seccompChoiceFrom(security?.seccomp, security?.seccompProfilePath ?? '', whenEmpty);
  for (const m of config.mounts) {
    if (m.recursiveReadOnly && (!m.readonly || m.propagation !== MountPropagation.PROPAGATION_PRIVATE)) {
      throw invalidArgument(`mount ${m.containerPath}: recursive_read_only needs readonly and private propagation`);
    }
    if (m.image?.image) {
      // Image volumes are read-only (the CRI asks runtimes to refuse readonly=false).
      if (!m.readonly) throw invalidArgument(`mount ${m.containerPath}: an image volume must be read-only`);
      const bad = checkSubPath(m.imageSubPath);
      if (bad) throw invalidArgument(`mount ${m.containerPath}: ${bad}`);
    } else if (m.imageSubPath) throw invalidArgument(`mount ${m.containerPath}: image_sub_path needs an image`);
    if (!isAbsolute(m.containerPath) || (!m.image?.image && !isAbsolute(m.hostPath))) throw invalidArgument(`mount ${m.hostPath}:${m.containerPath} needs absolute paths`);
  }
  for (const d of config.devices) {
    if (!/^[rwm]+$/.test(d.permissions || 'rwm')) throw invalidArgument(`device ${d.hostPath}: permissions "${d.permissions}" must be letters of "rwm"`);
  }
  const pid = security?.namespaceOptions?.pid;
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
    mounts: config.mounts.map((m): ContainerMount =>
      m.image?.image
        ? { containerPath: m.containerPath, hostPath: '', readonly: true, propagation: 'private', image: { image: m.image.image, imageId: '', subPath: m.imageSubPath } }
        : {
            containerPath: m.containerPath,
            hostPath: m.hostPath,
            readonly: m.readonly,
            recursiveReadOnly: m.recursiveReadOnly,
            propagation: propagations[m.propagation] ?? 'private',
          },
    ),
    labels: { ...config.labels },
    annotations: { ...config.annotations },
    logPath: config.logPath,
    tty: config.tty,
    stdin: config.stdin,
    stdinOnce: config.stdinOnce,
    runAsUser: security?.runAsUser ? Number(security.runAsUser.value) : undefined,
    runAsGroup: security?.runAsGroup ? Number(security.runAsGroup.value) : undefined,
    runAsUsername: security?.runAsUsername ?? '',
    supplementalGroups: (security?.supplementalGroups ?? []).map(Number),
    readonlyRootfs: security?.readonlyRootfs ?? false,
    privileged: security?.privileged ?? false,
    noNewPrivs: security?.noNewPrivs ?? false,
    capAdd: security?.capabilities?.addCapabilities ?? [],
    capDrop: security?.capabilities?.dropCapabilities ?? [],
    capAmbient: security?.capabilities?.addAmbientCapabilities ?? [],
    maskedPaths: security?.maskedPaths.length ? security.maskedPaths : undefined,
    readonlyPaths: security?.readonlyPaths.length ? security.readonlyPaths : undefined,
    devices: config.devices.map((d) => ({ containerPath: d.containerPath, hostPath: d.hostPath, permissions: d.permissions || 'rwm' })),
    cdiDevices: requestedCdiDevices(config.CDIDevices.map((d) => d.name), config.annotations),
    pidMode: security?.namespaceOptions ? namespaceModeFrom(pid) : undefined,
    pidTargetId: security?.namespaceOptions?.targetId ?? '',
    ...containerResourcesFrom(config.linux?.resources),
    oomScoreAdj: Number(config.linux?.resources?.oomScoreAdj ?? 0n),
    stopSignal: config.stopSignal ? Signal[config.stopSignal] : '',
    seccomp,
  };
}

/** CRI resources in berth's terms; 0 and empty mean "not set". */
export function containerResourcesFrom(resources: LinuxContainerResources | undefined): ContainerResources {
  return {
    cpuShares: Number(resources?.cpuShares ?? 0n),
    cpuQuota: Number(resources?.cpuQuota ?? 0n),
    cpuPeriod: Number(resources?.cpuPeriod ?? 0n),
    memoryLimit: Number(resources?.memoryLimitInBytes ?? 0n),
    memorySwapLimit: Number(resources?.memorySwapLimitInBytes ?? 0n),
    cpusetCpus: resources?.cpusetCpus ?? '',
    cpusetMems: resources?.cpusetMems ?? '',
    hugepageLimits: (resources?.hugepageLimits ?? []).map((h) => ({ pageSize: h.pageSize, limit: Number(h.limit) })),
    unified: { ...(resources?.unified ?? {}) },
  };
}

function toCriResources(spec: ContainerSpec): MessageInitShape<typeof LinuxContainerResourcesSchema> {
  return {
    cpuShares: BigInt(spec.cpuShares),
    cpuQuota: BigInt(spec.cpuQuota),
    cpuPeriod: BigInt(spec.cpuPeriod),
    memoryLimitInBytes: BigInt(spec.memoryLimit),
    memorySwapLimitInBytes: BigInt(spec.memorySwapLimit ?? 0),
    oomScoreAdj: BigInt(spec.oomScoreAdj),
    cpusetCpus: spec.cpusetCpus ?? '',
    cpusetMems: spec.cpusetMems ?? '',
    hugepageLimits: (spec.hugepageLimits ?? []).map((h) => ({ pageSize: h.pageSize, limit: BigInt(h.limit) })),
    unified: spec.unified ?? {},
  };
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

export function toCriContainerStatus(record: ContainerRecord, imageRef: string): MessageInitShape<typeof ContainerStatusSchema> {
  return {
    id: record.id,
    metadata: { name: record.spec.name, attempt: record.spec.attempt },
    state: criContainerStates[record.state],
    createdAt: BigInt(record.createdAt),
    startedAt: BigInt(record.startedAt),
    finishedAt: BigInt(record.finishedAt),
    exitCode: record.exitCode,
    image: { image: record.spec.image },
    imageRef,
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
      // An image volume reports its image and the id PullImage returned for it (KEP-5365's image_ref).
      ...(m.image ? { image: { image: m.image.image, imageRef: m.image.imageId }, imageSubPath: m.image.subPath } : {}),
    })),
    logPath: record.logFile,
    resources: { linux: toCriResources(record.spec) },
  };
}
