// Version: who berth is and which CRI API it serves.
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { BERTH_VERSION, KUBELET_API_VERSION, RUNTIME_API_VERSION, RUNTIME_NAME } from '../version.js';

export const version: UnaryHandler<typeof RuntimeService.method.version> = async () => ({
  version: KUBELET_API_VERSION,
  runtimeName: RUNTIME_NAME,
  runtimeVersion: BERTH_VERSION,
  runtimeApiVersion: RUNTIME_API_VERSION,
});
