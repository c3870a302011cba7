// RunPodSandbox, StopPodSandbox, RemovePodSandbox.
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import { sandboxSpecFrom } from './sandbox-translate.js';

export interface RuntimeHandlers {
  /** The handler of a pod whose request names none. */
  defaultRuntime: string;
  /** Every configured handler. */
  names: string[];
}

export function runPodSandboxHandler(pods: SandboxManager, handlers: RuntimeHandlers): UnaryHandler<typeof RuntimeService.method.runPodSandbox> {
  return async (request, ctx) => {
    const spec = sandboxSpecFrom(request.config, request.runtimeHandler || handlers.defaultRuntime);
    if (!handlers.names.includes(spec.runtimeHandler)) {
      throw invalidArgument(`runtime handler "${spec.runtimeHandler}" is not configured (have: ${handlers.names.join(', ')})`);
    }
    // The pod is made (or undone) whether or not the caller waits for the answer.
    const id = await pods.run(spec, ctx.signal);
    return { podSandboxId: id };
  };
}

export function stopPodSandboxHandler(pods: SandboxManager): UnaryHandler<typeof RuntimeService.method.stopPodSandbox> {
  return async (request) => {
    if (!request.podSandboxId) throw invalidArgument('StopPodSandbox: pod_sandbox_id is required');
    await pods.stop(request.podSandboxId);
    return {};
  };
}

export function removePodSandboxHandler(pods: SandboxManager): UnaryHandler<typeof RuntimeService.method.removePodSandbox> {
  return async (request) => {
    if (!request.podSandboxId) throw invalidArgument('RemovePodSandbox: pod_sandbox_id is required');
    await pods.remove(request.podSandboxId);
    return {};
  };
}
