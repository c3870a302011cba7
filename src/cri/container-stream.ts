// Exec and Attach: check the request and the container, then hand back a URL on the
// streaming server, where the session itself runs (src/stream/).
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ContainerManager } from '../container/container-manager.js';
import type { StreamUrls } from '../stream/backends.js';

type Method<K extends keyof typeof RuntimeService.method> = UnaryHandler<(typeof RuntimeService.method)[K]>;

/** The kubelet's rules for a stream request (validateExecRequest / validateAttachRequest). */
function checkStreams(rpc: string, r: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (r.tty && r.stderr) throw invalidArgument(`${rpc}: tty and stderr cannot both be true`);
  if (!r.stdin && !r.stdout && !r.stderr) throw invalidArgument(`${rpc}: one of stdin, stdout, or stderr must be set`);
}

export function containerStreamHandlers(containers: ContainerManager, urls: StreamUrls): { exec: Method<'exec'>; attach: Method<'attach'> } {
  return {
    exec: async (request) => {
      if (!request.containerId) throw invalidArgument('Exec: container_id is required');
      if (request.cmd.length === 0) throw invalidArgument('Exec: cmd is required');
      checkStreams('Exec', request);
      const record = await containers.running(request.containerId);
      return { url: urls.execUrl({ containerId: record.id, cmd: [...request.cmd], tty: request.tty, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr }) };
    },
    attach: async (request) => {
      if (!request.containerId) throw invalidArgument('Attach: container_id is required');
      checkStreams('Attach', request);
      const record = await containers.running(request.containerId);
      return { url: urls.attachUrl({ containerId: record.id, tty: request.tty, stdin: request.stdin, stdout: request.stdout, stderr: request.stderr }) };
    },
  };
}
