// UpdatePodSandboxResources: the kubelet tells the runtime the pod-level resources it
// has just given the pod's cgroup (best effort for the kubelet: a failure does not
// stop a resize). berth records them (PodSandboxStatus verbose shows them) and writes
// them to the pod's cgroup when berth made that cgroup itself.
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { CgroupLimits } from '../linux/cgroup-limits.js';
import { containerResourcesFrom } from './container-translate.js';

function limitsFrom(resources: Parameters<typeof containerResourcesFrom>[0]): CgroupLimits {
  const r = containerResourcesFrom(resources);
  return { cpuShares: r.cpuShares, cpuQuota: r.cpuQuota, cpuPeriod: r.cpuPeriod, memoryLimit: r.memoryLimit, cpusetCpus: r.cpusetCpus, cpusetMems: r.cpusetMems, unified: r.unified };
}

export function updatePodSandboxResourcesHandler(pods: SandboxManager): UnaryHandler<typeof RuntimeService.method.updatePodSandboxResources> {
  return async (request) => {
    if (!request.podSandboxId) throw invalidArgument('UpdatePodSandboxResources: pod_sandbox_id is required');
    await pods.updateResources(request.podSandboxId, limitsFrom(request.resources), limitsFrom(request.overhead));
    return {};
  };
}
