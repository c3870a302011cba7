// berthctl's pod verbs, shaped like crictl's: runp, pods, inspectp, stopp, rmp.
import type { MessageShape } from '@bufbuild/protobuf';
import { PodSandboxConfigSchema, PodSandboxSchema, PodSandboxState, PodSandboxStatusSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, type CriClients } from '../runtime-client.js';
import { statusJson, formatStatusDocs, formatStructured, formatTable, goMapString, goTimeString, messageJson, rfc3339Nano, withInfo, type OutputFormat } from '../output.js';
import { humanDuration, labelLines, truncateId } from '../format.js';
import { loadMessageFile, parseLabelSelector } from '../inputs.js';

type PodSandbox = MessageShape<typeof PodSandboxSchema>;

export async function runPodCommand(clients: CriClients, configPath: string, runtimeHandler: string): Promise<string> {
  const config = await loadMessageFile(PodSandboxConfigSchema, configPath);
  const response = await call('running the pod sandbox', () =>
    clients.runtime.runPodSandbox({ config, runtimeHandler }, { timeoutMs: Math.max(clients.settings.timeoutMs, 240_000) }),
  );
  return `${response.podSandboxId}\n`;
}

export interface PodsOptions {
  id?: string;
  name?: string;
  namespace?: string;
  labels: string[];
  state?: string;
  quiet: boolean;
  verbose: boolean;
  noTrunc: boolean;
  latest: boolean;
  last?: number;
  output: OutputFormat;
}

export async function podsCommand(clients: CriClients, options: PodsOptions): Promise<string> {
  const labelSelector = parseLabelSelector(options.labels);
  let state: { state: PodSandboxState } | undefined;
  if (options.state) {
    const wanted = options.state.toLowerCase();
    if (wanted !== 'ready' && wanted !== 'notready') throw new Error(`--state must be ready or notready, not "${options.state}"`);
    state = { state: wanted === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY };
  }
  const response = await call('listing pod sandboxes', () =>
    clients.runtime.listPodSandbox({ filter: { id: options.id ?? '', state, labelSelector } }, { timeoutMs: clients.settings.timeoutMs }),
  );
  let pods = [...response.items].sort((a, b) => (b.createdAt > a.createdAt ? 1 : b.createdAt < a.createdAt ? -1 : 0));
  if (options.name) pods = pods.filter((p) => new RegExp(options.name!).test(p.metadata?.name ?? ''));
  if (options.namespace) pods = pods.filter((p) => new RegExp(options.namespace!).test(p.metadata?.namespace ?? ''));
  pods = pods.slice(0, truncateCount(pods.length, options.latest, options.last ?? 0));
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

export async function inspectPodCommand(clients: CriClients, ids: string[], output: OutputFormat, template = ''): Promise<string> {
  const docs: unknown[] = [];
  let table = '';
  for (const id of ids) {
    const response = await call(`getting the pod sandbox status of "${id}"`, () =>
      clients.runtime.podSandboxStatus({ podSandboxId: id, verbose: true }, { timeoutMs: clients.settings.timeoutMs }),
    );
    const s = response.status;
    if (output === 'table') {
      // crictl's outputPodSandboxStatusTable.
      const m = s?.metadata;
      const lines = [`ID: ${s?.id ?? ''}`];
      if (m) lines.push(...(m.name ? [`Name: ${m.name}`] : []), ...(m.uid ? [`UID: ${m.uid}`] : []), ...(m.namespace ? [`Namespace: ${m.namespace}`] : []), `Attempt: ${m.attempt}`);
      lines.push(`Status: ${PodSandboxState[s?.state ?? 0]}`, `Created: ${humanDuration(Date.now() - Number((s?.createdAt ?? 0n) / 1_000_000n))} ago`);
      if (s?.network) lines.push(`IP Addresses: ${s.network.ip}`, ...s.network.additionalIps.map((ip) => `Additional IP: ${ip.ip}`));
      lines.push(...labelLines(s?.labels ?? {}, s?.annotations ?? {}), `Info: ${goMapString(response.info)}`);
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

