// CheckpointContainer: the request's shape is checked here; the container manager
// decides (container state, CRIU on this host). The timeout is the caller's deadline.
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ContainerManager } from '../container/container-manager.js';

export function checkpointContainerHandler(containers: ContainerManager): UnaryHandler<typeof RuntimeService.method.checkpointContainer> {
  return async (request) => {
    if (!request.containerId) throw invalidArgument('CheckpointContainer: container_id is required');
    if (!request.location) throw invalidArgument('CheckpointContainer: location (the archive to write) is required');
    await containers.checkpoint(request.containerId, request.location);
    return {};
  };
}
