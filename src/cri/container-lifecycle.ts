// CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
// ListContainers: thin handlers over the container manager.
import { ContainerSchema, ContainerStatusSchema, type ContainerState as CriContainerState, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import { withEncoding, type UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ContainerManager } from '../container/container-manager.js';
import { containerResourcesFrom, containerSpecFrom, criContainerStates, toCriContainer, toCriContainerStatus, type ContainerTranslateOptions } from './container-translate.js';
import { filterContainers, hasLabels, onlyState } from './list-filters.js';
import type { ContainerRecord } from '../container/container-types.js';
import { EncodedFields, EncodedList, type AnswerKey, type ItemKey } from './encoded-answers.js';

type Method<K extends keyof typeof RuntimeService.method> = UnaryHandler<(typeof RuntimeService.method)[K]>;

/**
 * What toCriContainerStatus reads that can change: the state and its times, code and
 * reason, the image's ref, the resources (UpdateContainerResources changes the spec's in
 * place) and, by identity, the spec and the objects taken from it.
 */
function statusKey(r: ContainerRecord, imageRef: string): AnswerKey {
  const s = r.spec;
  return [
    r.state, r.startedAt, r.finishedAt, r.exitCode, r.reason, r.message, r.logFile, imageRef,
    s, s.image, s.imageId, s.labels, s.annotations, s.mounts,
    s.cpuShares, s.cpuQuota, s.cpuPeriod, s.memoryLimit, s.memorySwapLimit, s.oomScoreAdj, s.cpusetCpus, s.cpusetMems, s.hugepageLimits, s.unified,
  ];
}

/** What toCriContainer reads that can change. */
const itemKey: ItemKey<ContainerRecord> = [(r) => r.state, (r) => r.spec, (r) => r.spec.image, (r) => r.spec.imageId, (r) => r.spec.labels, (r) => r.spec.annotations];

const criStates = new Set<number>(Object.values(criContainerStates));

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
  const statuses = new EncodedFields<ContainerRecord, typeof ContainerStatusSchema>(ContainerStatusSchema, 1);
  const items = new EncodedFields<ContainerRecord, typeof ContainerSchema>(ContainerSchema, 1);
  // The listings the kubelet polls (no filter, or only a state) are kept whole until a
  // container changes, one per state asked; the others are made from the cached items.
  const lists = new Map<CriContainerState | undefined, EncodedList<ContainerRecord, typeof ContainerSchema>>();
  const listOf = (state: CriContainerState | undefined) => {
    let list = lists.get(state);
    if (!list) lists.set(state, (list = new EncodedList(items, itemKey, toCriContainer)));
    return list;
  };
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
      if (!request.verbose) {
        // The response's only field is the status: its cached encoding is the whole answer.
        const imageRef = containers.imageRefOf(record);
        const bytes = statuses.of(record, statusKey(record, imageRef), () => toCriContainerStatus(record, imageRef));
        return withEncoding({ get status() { return toCriContainerStatus(record, imageRef); }, info: {} }, bytes);
      }
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
      // The containers the filter keeps (found by pod, or by the rarest label pair asked), then only those refreshed.
      const candidates = filter?.podSandboxId ? containers.ofPodOrPrefix(filter.podSandboxId) : hasLabels(filter) ? containers.withLabels(filter!.labelSelector) : containers.list();
      let records = await containers.fresh(filterContainers(candidates, filter));
      const state = filter?.state?.state;
      if (state !== undefined) records = records.filter((r) => criContainerStates[r.state] === state);
      // Only the states there are get a list kept (a client picks the number).
      const kept = onlyState(filter) && (state === undefined || criStates.has(state));
      const { bytes, records: listed } = kept ? listOf(state).of(records) : listOf(undefined).once(records);
      return withEncoding({ get containers() { return listed.map(toCriContainer); } }, bytes);
    },
  };
}
