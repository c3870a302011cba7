// RuntimeConfig (the cgroup driver the kubelet must match) and UpdateRuntimeConfig
// (the pod CIDR, which berth records and reports; the CNI config owns addressing).
import { CgroupDriver, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import type { BerthConfig } from '../config/config.js';

export interface RuntimeSettings {
  podCidr: string;
}

export function runtimeConfigHandler(config: BerthConfig): UnaryHandler<typeof RuntimeService.method.runtimeConfig> {
  return async () => ({
    linux: { cgroupDriver: config.cgroup_driver === 'systemd' ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS },
  });
}

export function updateRuntimeConfigHandler(settings: RuntimeSettings): UnaryHandler<typeof RuntimeService.method.updateRuntimeConfig> {
  return async (request) => {
    const cidr = request.runtimeConfig?.networkConfig?.podCidr;
    if (cidr !== undefined) settings.podCidr = cidr;
    return {};
  };
}
