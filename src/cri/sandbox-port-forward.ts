// PortForward: check the pod, hand back a URL on the streaming server.
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument, failedPrecondition } from '../errors.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { StreamUrls } from '../stream/backends.js';

export function portForwardHandler(pods: SandboxManager, urls: StreamUrls): UnaryHandler<typeof RuntimeService.method.portForward> {
  return async (request) => {
    if (!request.podSandboxId) throw invalidArgument('PortForward: pod_sandbox_id is required');
    for (const port of request.port) if (port < 1 || port > 65535) throw invalidArgument(`PortForward: port ${port} is out of range`);
    const pod = pods.get(request.podSandboxId);
    if (pod.state !== 'ready') throw failedPrecondition(`pod sandbox ${pod.id} is not ready`);
    return { url: urls.portForwardUrl({ podId: pod.id, ports: [...request.port] }) };
  };
}
