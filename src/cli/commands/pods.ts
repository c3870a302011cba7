// berthctl's pod verbs, shaped like crictl's: runp, pods, inspectp, stopp, rmp.
import type { MessageShape } from '@bufbuild/protobuf';
import { PodSandboxConfigSchema, PodSandboxSchema, PodSandboxState, PodSandboxStatusSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, type CriClients } from '../runtime-client.js';
import { statusJson, formatStatusDocs, formatStructured, formatTable, goMapString, goTimeString, messageJson, rfc3339Nano, withInfo, type OutputFormat } from '../output.js';
import { humanDuration, labelLines, truncateId } from '../format.js';
import { loadMessageFile, NothingSelected, parseLabelSelector } from '../inputs.js';

type PodSandbox = MessageShape<typeof PodSandboxSchema>;

/** runp; `cancelTimeoutMs` above 0 (crictl's --cancel-timeout) is the call's deadline. */
export async function runPodCommand(clients: CriClients, configPath: string, runtimeHandler: string, cancelTimeoutMs = 0): Promise<string> {
  const config = await loadMessageFile(PodSandboxConfigSchema, configPath);
  const response = await call('running the pod sandbox', () =>
    clients.runtime.runPodSandbox({ config, runtimeHandler }, { timeoutMs: cancelTimeoutMs > 0 ? cancelTimeoutMs : Math.max(clients.settings.timeoutMs, 240_000) }),
  );
  return `${response.podSandboxId}\n`;
}

export interface PodsOptions extends PodFilter {
  quiet: boolean;
  verbose: boolean;
  noTrunc: boolean;
  output: OutputFormat;
}

/** Which pods a listing (pods, inspectp without ids) picks, as crictl's listOptions. */
export interface PodFilter {
  id?: string;
  name?: string;
  namespace?: string;
  labels: string[];
  state?: string;
  latest: boolean;
  last?: number;
}

/** The pods a filter picks, newest first (crictl's ListPodSandboxes and its client-side filters). */
export async function listPods(clients: CriClients, filter: PodFilter): Promise<PodSandbox[]> {
  const labelSelector = parseLabelSelector(filter.labels);
  let state: { state: PodSandboxState } | undefined;
  if (filter.state) {
    const wanted = filter.state.toLowerCase();
    if (wanted !== 'ready' && wanted !== 'notready') throw new Error(`--state must be ready or notready, not "${filter.state}"`);
    state = { state: wanted === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY };
  }
  const response = await call('listing pod sandboxes', () =>
    clients.runtime.listPodSandbox({ filter: { id: filter.id ?? '', state, labelSelector } }, { timeoutMs: clients.settings.timeoutMs }),
  );
  let pods = [...response.items].sort((a, b) => (b.createdAt > a.createdAt ? 1 : b.createdAt < a.createdAt ? -1 : 0));
  if (filter.name) pods = pods.filter((p) => new RegExp(filter.name!).test(p.metadata?.name ?? ''));
  if (filter.namespace) pods = pods.filter((p) => new RegExp(filter.namespace!).test(p.metadata?.namespace ?? ''));
  return pods.slice(0, truncateCount(pods.length, filter.latest, filter.last ?? 0));
}

export async function podsCommand(clients: CriClients, options: PodsOptions): Promise<string> {
  const pods = await listPods(clients, options);
  if (options.output !== 'table') return formatStructured({ items: pods.map((p) => messageJson(PodSandboxSchema, p)) }, options.output);
  if (options.quiet) return pods.map((p) => `${p.id}\n`).join('');
  if (options.verbose) return pods.map(verbosePod).join('');
  return formatTable(
    ['POD ID', 'CREATED', 'STATE', 'NAME', 'NAMESPACE', 'ATTEMPT', 'RUNTIME'],
    pods.map((p) => [
      options.noTrunc ? p.id : truncateId(p.id),
      `${humanDuration(Date.now() - Number(p.createdAt / 1_000_000n))} ago`,
      p.state === PodSandboxState.SANDBOX_READY ? 'Ready' : 'NotReady',
      p.metadata?.name ?? '',
      p.metadata?.namespace ?? '',
      String(p.metadata?.attempt ?? 0),
      p.runtimeHandler || '(default)',
    ]),
  );
}

/** crictl's truncateCount: --latest is 1, --last N (N > 0) wins, 0 means all. */
export function truncateCount(total: number, latest: boolean, last: number): number {
  let n = total;
  if (latest) n = 1;
  if (last > 0) n = last;
  return Math.min(n, total);
}

function verbosePod(p: PodSandbox): string {
  const m = p.metadata;
  const lines = [
    `ID: ${p.id}`,
    ...(m?.name ? [`Name: ${m.name}`] : []),
    ...(m?.uid ? [`UID: ${m.uid}`] : []),
    ...(m?.namespace ? [`Namespace: ${m.namespace}`] : []),
    ...(m?.attempt ? [`Attempt: ${m.attempt}`] : []),
    `Status: ${p.state === PodSandboxState.SANDBOX_READY ? 'Ready' : 'NotReady'}`,
    `Created: ${goTimeString(p.createdAt)}`,
  ];
  return [...lines, ...labelLines(p.labels, p.annotations), `Runtime: ${p.runtimeHandler || '(default)'}`].join('\n') + '\n\n';
}

/**
 * inspectp: the given pods, or without ids those a filter picks (crictl's rule; none at
 * all is not an error there). `verbose: false` (crictl's -q) leaves the info out.
 */
export async function inspectPodCommand(clients: CriClients, ids: string[], output: OutputFormat, template = '', verbose = true, filter?: PodFilter): Promise<string> {
  if (ids.length === 0 && filter) ids = (await listPods(clients, filter)).map((p) => p.id);
  if (ids.length === 0) throw new NothingSelected();
  const docs: unknown[] = [];
  let table = '';
  for (const id of ids) {
    const response = await call(`getting the pod sandbox status of "${id}"`, () =>
      clients.runtime.podSandboxStatus({ podSandboxId: id, verbose }, { timeoutMs: clients.settings.timeoutMs }),
    );
    const s = response.status;
    if (output === 'table') {
      // crictl's outputPodSandboxStatusTable.
      const m = s?.metadata;
      const lines = [`ID: ${s?.id ?? ''}`];
      if (m) lines.push(...(m.name ? [`Name: ${m.name}`] : []), ...(m.uid ? [`UID: ${m.uid}`] : []), ...(m.namespace ? [`Namespace: ${m.namespace}`] : []), `Attempt: ${m.attempt}`);
      lines.push(`Status: ${PodSandboxState[s?.state ?? 0]}`, `Created: ${humanDuration(Date.now() - Number((s?.createdAt ?? 0n) / 1_000_000n))} ago`);
      if (s?.network) lines.push(`IP Addresses: ${s.network.ip}`, ...s.network.additionalIps.map((ip) => `Additional IP: ${ip.ip}`));
      lines.push(...labelLines(s?.labels ?? {}, s?.annotations ?? {}), ...(verbose ? [`Info: ${goMapString(response.info)}`] : []));
      table += lines.join('\n') + '\n';
      continue;
    }
    // As crictl: createdAt as an RFC 3339 time rather than nanoseconds.
    const status = s ? statusJson(PodSandboxStatusSchema, s, { createdAt: rfc3339Nano(s.createdAt) }) : null;
    docs.push(withInfo({ status }, response.info));
  }
  return output === 'table' ? table : formatStatusDocs(docs, output, template);
}

export async function stopPodsCommand(clients: CriClients, ids: string[]): Promise<string> {
  if (ids.length === 0) throw new Error('stopp: give at least one pod sandbox id');
  let out = '';
  for (const id of ids) {
    await call(`stopping the pod sandbox "${id}"`, () => clients.runtime.stopPodSandbox({ podSandboxId: id }, { timeoutMs: Math.max(clients.settings.timeoutMs, 60_000) }));
    out += `Stopped sandbox ${id}\n`;
  }
  return out;
}

export async function removePodsCommand(clients: CriClients, ids: string[], options: { all: boolean; force: boolean }): Promise<string> {
  const timeoutMs = Math.max(clients.settings.timeoutMs, 60_000);
  let targets = ids;
  if (options.all) targets = (await call('listing pod sandboxes', () => clients.runtime.listPodSandbox({}, { timeoutMs }))).items.map((p) => p.id);
  else if (targets.length === 0) throw new Error('rmp: give at least one pod sandbox id, or --all');
  let out = '';
  for (const id of targets) {
    const status = await call(`getting the pod sandbox status of "${id}"`, () => clients.runtime.podSandboxStatus({ podSandboxId: id }, { timeoutMs }));
    if (status.status?.state === PodSandboxState.SANDBOX_READY) {
      if (!options.force) throw new Error(`pod sandbox "${id}" is running, please stop it first`);
      await call(`stopping the pod sandbox "${id}"`, () => clients.runtime.stopPodSandbox({ podSandboxId: id }, { timeoutMs }));
      out += `Stopped sandbox ${id}\n`;
    }
    await call(`removing the pod sandbox "${id}"`, () => clients.runtime.removePodSandbox({ podSandboxId: id }, { timeoutMs }));
    out += `Removed sandbox ${id}\n`;
  }
  return out;
}

