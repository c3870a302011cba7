// PodSandboxStatus and ListPodSandbox.
import { PodSandboxSchema, PodSandboxState, PodSandboxStatusSchema, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import { withEncoding, type UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import { EncodedFields, EncodedList, type AnswerKey, type ItemKey } from './encoded-answers.js';
import { sandboxConfigJsonOf, toCriSandbox, toCriSandboxStatus } from './sandbox-translate.js';
import { filterPods, hasLabels, onlyState } from './list-filters.js';

/**
 * No timestamp, as containerd: with one, the kubelet's EventedPLEG code path takes the
 * pod's container statuses from this answer as they come (unsorted, without its
 * FallbackToLogsOnError message or its active-sandbox set) instead of asking
 * ContainerStatus for each container; without, it does its usual listing.
 */
/** What toCriSandboxStatus reads that can change: the state, the network (and the spec, by identity). */
const statusKey = (r: SandboxRecord): AnswerKey => [r.state, r.spec, r.network, r.network?.ips, r.network?.ips.length];
/** What toCriSandbox reads that can change. */
const itemKey: ItemKey<SandboxRecord> = [(r) => r.state, (r) => r.spec];

export function podSandboxStatusHandler(pods: SandboxManager): UnaryHandler<typeof RuntimeService.method.podSandboxStatus> {
  const statuses = new EncodedFields<SandboxRecord, typeof PodSandboxStatusSchema>(PodSandboxStatusSchema, 1);
  return async (request) => {
    if (!request.podSandboxId) throw invalidArgument('PodSandboxStatus: pod_sandbox_id is required');
    const record = await pods.getChecked(request.podSandboxId);
    if (!request.verbose) {
      // The response's only field is the status: its cached encoding is the whole answer.
      const bytes = statuses.of(record, statusKey(record), () => toCriSandboxStatus(record));
      return withEncoding({ get status() { return toCriSandboxStatus(record); }, info: {} }, bytes);
    }
    const info: Record<string, string> = {};
    if (request.verbose) {
      info.info = JSON.stringify({
        // As containerd's pause pid: the pod's init, when it has a shared PID namespace.
        pid: record.pidInit ?? 0,
        netns: record.netns ?? '',
        namespaces: { network: record.netns, uts: record.utsns, ipc: record.ipcns, pid: record.pidns },
        network: record.network,
        cgroupPath: record.cgroupPath,
        podDir: record.podDir,
        runtimeHandler: record.spec.runtimeHandler,
        config: sandboxConfigJsonOf(record.spec),
        resources: record.resources,
      });
    }
    return { status: toCriSandboxStatus(record), info };
  };
}

export function listPodSandboxHandler(pods: SandboxManager): UnaryHandler<typeof RuntimeService.method.listPodSandbox> {
  const items = new EncodedFields<SandboxRecord, typeof PodSandboxSchema>(PodSandboxSchema, 1);
  // Newest first. createdAt is a decimal string of nanoseconds without leading zeros:
  // the longer is the later, and of one length the greater string.
  const byAge = (a: SandboxRecord, b: SandboxRecord) => newerFirst(a.createdAt, b.createdAt);
  // The listings the kubelet polls (no filter, or only a state) are kept whole until a pod
  // changes, one per state asked; the others are made from the pods' cached items.
  const lists = new Map<SandboxRecord['state'] | undefined, EncodedList<SandboxRecord, typeof PodSandboxSchema>>();
  const listOf = (state: SandboxRecord['state'] | undefined) => {
    let list = lists.get(state);
    if (!list) lists.set(state, (list = new EncodedList(items, itemKey, toCriSandbox, byAge)));
    return list;
  };
  return async (request) => {
    const filter = request.filter;
    // The pods the filter keeps (found by the rarest label pair asked), then only those checked.
    let records = await pods.checked(filterPods(hasLabels(filter) ? pods.withLabels(filter!.labelSelector) : pods.list(), filter));
    const wanted = filter?.state ? (filter.state.state === PodSandboxState.SANDBOX_READY ? 'ready' : 'notready') : undefined;
    if (wanted) records = records.filter((r) => r.state === wanted);
    const { bytes, records: listed } = onlyState(filter) ? listOf(wanted).of(records) : listOf(undefined).once(records);
    return withEncoding({ get items() { return listed.map(toCriSandbox); } }, bytes);
  };
}

function newerFirst(a: string, b: string): number {
  if (a.length !== b.length) return b.length - a.length;
  return a < b ? 1 : a > b ? -1 : 0;
}
