// CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
// ListContainers: thin handlers over the container manager.
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ContainerManager } from '../container/container-manager.js';
import { containerResourcesFrom, containerSpecFrom, criContainerStates, toCriContainer, toCriContainerStatus, type ContainerTranslateOptions } from './container-translate.js';
import { filterContainers } from './list-filters.js';

type Method<K extends keyof typeof RuntimeService.method> = UnaryHandler<(typeof RuntimeService.method)[K]>;

function requireId(id: string, rpc: string): string {
  if (!id) throw invalidArgument(`${rpc}: container_id is required`);
  return id;
}

export function containerHandlers(containers: ContainerManager, translate: ContainerTranslateOptions = {}): {
  createContainer: Method<'createContainer'>;
  startContainer: Method<'startContainer'>;
  stopContainer: Method<'stopContainer'>;
  removeContainer: Method<'removeContainer'>;
  containerStatus: Method<'containerStatus'>;
  listContainers: Method<'listContainers'>;
  execSync: Method<'execSync'>;
  updateContainerResources: Method<'updateContainerResources'>;
  reopenContainerLog: Method<'reopenContainerLog'>;
} {
  return {
    createContainer: async (request) => {
      if (!request.podSandboxId) throw invalidArgument('CreateContainer: pod_sandbox_id is required');
      return { containerId: await containers.create(request.podSandboxId, containerSpecFrom(request.config, translate)) };
    },
    startContainer: async (request) => {
      await containers.start(requireId(request.containerId, 'StartContainer'));
      return {};
    },
    stopContainer: async (request) => {
      await containers.stop(requireId(request.containerId, 'StopContainer'), Number(request.timeout));
      return {};
    },
    removeContainer: async (request) => {
      await containers.remove(requireId(request.containerId, 'RemoveContainer'));
      return {};
    },
    containerStatus: async (request) => {
      const record = await containers.get(requireId(request.containerId, 'ContainerStatus'));
      const info: Record<string, string> = {};
      if (request.verbose) {
        // containerd's keys where berth has the same thing (crictl inspect templates use them).
        info.info = JSON.stringify({
          sandboxID: record.podId,
          pid: record.state === 'running' ? record.pid : 0,
          runtimeType: record.runtime,
          bundle: record.bundle,
          config: record.spec,
          runtimeSpec: await containers.runtimeSpecOf(record),
        });
      }
      return { status: toCriContainerStatus(record, containers.imageRefOf(record)), info };
    },
    execSync: async (request) => {
      if (request.cmd.length === 0) throw invalidArgument('ExecSync: cmd is required');
      const result = await containers.execSync(requireId(request.containerId, 'ExecSync'), request.cmd, Number(request.timeout));
      return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
    },
    updateContainerResources: async (request) => {
      await containers.updateResources(requireId(request.containerId, 'UpdateContainerResources'), containerResourcesFrom(request.linux));
      return {};
    },
    reopenContainerLog: async (request) => {
      await containers.reopenLog(requireId(request.containerId, 'ReopenContainerLog'));
      return {};
    },
    listContainers: async (request) => {
      const filter = request.filter;
      let records = filterContainers(await containers.listFresh(), filter);
      if (filter?.state) records = records.filter((r) => criContainerStates[r.state] === filter.state!.state);
      return { containers: records.map(toCriContainer) };
    },
  };
}
