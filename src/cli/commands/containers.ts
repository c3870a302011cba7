// berthctl's container verbs, shaped like crictl's: create, start, run, ps, inspect,
// stop, rm, logs.
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { portForward, remoteCommand, type StreamTls, type StreamTransport } from '../stream-client.js';
import type { TerminalSize } from '../../stream/backends.js';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ContainerConfigSchema,
  ContainerSchema,
  type Container,
  ContainerState,
  ContainerStatsSchema,
  ContainerStatusSchema,
  PodSandboxConfigSchema,
  PodSandboxStatsSchema,
} from '../../gen/runtime/v1/api_pb.js';
import { authConfig } from './images.js';
import { call, type CriClients } from '../runtime-client.js';
import { CLEAR_SCREEN, statusJson, formatStatusDocs, formatStructured, formatTable, goMapString, humanSize, messageJson, rfc3339Nano, withInfo, type OutputFormat } from '../output.js';
import { humanDuration, labelLines, truncateId } from '../format.js';
import { loadMessageFile, NothingSelected, parseLabelSelector } from '../inputs.js';
import { truncateCount } from './pods.js';
import { parseDuration } from '../../util/duration.js';

const stateNames: Record<ContainerState, string> = {
  [ContainerState.CONTAINER_CREATED]: 'Created',
  [ContainerState.CONTAINER_RUNNING]: 'Running',
  [ContainerState.CONTAINER_EXITED]: 'Exited',
  [ContainerState.CONTAINER_UNKNOWN]: 'Unknown',
};

const long = (clients: CriClients) => Math.max(clients.settings.timeoutMs, 120_000);

/**
 * A container config as crictl's users write it. KeyValue.value is `bytes` in the CRI
 * proto, so protobuf JSON would read "value": "hi there" as base64; crictl users write
 * the text itself, so text is what berthctl sends.
 */
function loadContainerConfig(path: string) {
  return loadMessageFile(ContainerConfigSchema, path, (doc) => {
    const envs = (doc as { envs?: unknown } | null)?.envs;
    if (!Array.isArray(envs)) return doc;
    return {
      ...(doc as object),
      envs: envs.map((e: unknown) => {
        const entry = e as { value?: unknown } | null;
        return entry && typeof entry.value === 'string' ? { ...entry, value: Buffer.from(entry.value, 'utf8').toString('base64') } : e;
      }),
    };
  });
}

/** crictl's --with-pull: the container's image (and its image volumes) pulled before create. */
export interface ContainerPull {
  creds?: string;
  auth?: string;
  username?: string;
  pullTimeoutMs: number;
}

/** crictl's --cancel-timeout: a deadline for the create (run: each call) when above 0, else berthctl's long one. */
const cancelAfter = (clients: CriClients, cancelTimeoutMs = 0) => (cancelTimeoutMs > 0 ? cancelTimeoutMs : long(clients));

async function pullForContainer(clients: CriClients, config: Awaited<ReturnType<typeof loadContainerConfig>>, sandboxConfig: Awaited<ReturnType<typeof loadMessageFile<typeof PodSandboxConfigSchema>>>, pull: ContainerPull): Promise<void> {
  const images = [config.image?.image ?? '', ...config.mounts.map((m) => m.image?.image ?? '')].filter((i) => i !== '');
  for (const image of images) {
    await call('pulling image', () => clients.image.pullImage({ image: { image }, auth: authConfig(pull), sandboxConfig }, { timeoutMs: pull.pullTimeoutMs }));
  }
}

export async function createContainerCommand(clients: CriClients, podId: string, containerConfig: string, podConfig: string, pull?: ContainerPull, cancelTimeoutMs = 0): Promise<string> {
  const config = await loadContainerConfig(containerConfig);
  const sandboxConfig = await loadMessageFile(PodSandboxConfigSchema, podConfig);
  if (pull) await pullForContainer(clients, config, sandboxConfig, pull);
  const response = await call('creating container', () => clients.runtime.createContainer({ podSandboxId: podId, config, sandboxConfig }, { timeoutMs: cancelAfter(clients, cancelTimeoutMs) }));
  return `${response.containerId}\n`;
}

export async function startContainersCommand(clients: CriClients, ids: string[]): Promise<string> {
  let out = '';
  for (const id of ids) {
    await call(`starting the container "${id}"`, () => clients.runtime.startContainer({ containerId: id }, { timeoutMs: long(clients) }));
    out += `${id}\n`;
  }
  return out;
}

/** runp + create + start, as `crictl run` does. */
export async function runContainerCommand(clients: CriClients, containerConfig: string, podConfig: string, runtimeHandler: string, pull?: ContainerPull, cancelTimeoutMs = 0): Promise<string> {
  const config = await loadContainerConfig(containerConfig);
  const sandboxConfig = await loadMessageFile(PodSandboxConfigSchema, podConfig);
  if (pull) await pullForContainer(clients, config, sandboxConfig, pull);
  const timeoutMs = cancelAfter(clients, cancelTimeoutMs);
  const pod = await call('running the pod sandbox', () => clients.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler }, { timeoutMs }));
  const created = await call('creating container', () =>
    clients.runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig }, { timeoutMs }),
  );
  await call('starting container', () => clients.runtime.startContainer({ containerId: created.containerId }, { timeoutMs }));
  return `${created.containerId}\n`;
}

/** Which containers a listing (ps; inspect and exec without ids) picks, as crictl's listOptions. */
export interface ContainerFilter {
  /** crictl's --id: the runtime's id filter. */
  id?: string;
  pod?: string;
  /** A regular expression on the container name. */
  name?: string;
  /** crictl's --namespace: a regular expression on the pod namespace label. */
  namespace?: string;
  labels: string[];
  state?: string;
  /** Containers of this image (compared by image id, as crictl does). */
  image?: string;
  /** Every state, not only running containers. */
  all: boolean;
  /** Only the most recently created (crictl's --latest); counts every state. */
  latest?: boolean;
  /** Only the N most recently created (crictl's --last); counts every state. */
  last?: number;
}

const STATE_FILTERS: Record<string, ContainerState> = {
  created: ContainerState.CONTAINER_CREATED,
  running: ContainerState.CONTAINER_RUNNING,
  exited: ContainerState.CONTAINER_EXITED,
  unknown: ContainerState.CONTAINER_UNKNOWN,
};

/** The containers a filter picks, newest first: crictl's ListContainers and getContainersList. */
export async function listContainers(clients: CriClients, filter: ContainerFilter): Promise<Container[]> {
  let state: { state: ContainerState } | undefined = filter.all ? undefined : { state: ContainerState.CONTAINER_RUNNING };
  if (filter.state) {
    const wanted = STATE_FILTERS[filter.state.toLowerCase()];
    if (wanted === undefined) throw new Error('--state should be one of created, running, exited or unknown');
    state = { state: wanted };
  }
  if (filter.latest || (filter.last ?? 0) > 0) state = undefined;
  const labelSelector = parseLabelSelector(filter.labels);
  const response = await call('listing containers', () =>
    clients.runtime.listContainers({ filter: { id: filter.id ?? '', podSandboxId: filter.pod ?? '', state, labelSelector } }, { timeoutMs: clients.settings.timeoutMs }),
  );
  const name = filter.name ? new RegExp(filter.name) : undefined;
  const namespace = filter.namespace ? new RegExp(filter.namespace) : undefined;
  const imageIds = new Map<string, Promise<string | undefined>>();
  const imageId = (image: string) => {
    if (!imageIds.has(image)) imageIds.set(image, call('check image match', () => clients.image.imageStatus({ image: { image } }, { timeoutMs: clients.settings.timeoutMs })).then((r) => r.image?.id));
    return imageIds.get(image)!;
  };
  const picked: Container[] = [];
  for (const c of response.containers) {
    if (filter.image) {
      const [wanted, actual] = await Promise.all([imageId(filter.image), imageId(c.image?.image ?? '')]);
      if (wanted === undefined || wanted !== actual) continue;
    }
    if (!c.metadata) continue;
    if (name && !name.test(c.metadata.name)) continue;
    if (namespace && !namespace.test(c.labels['io.kubernetes.pod.namespace'] ?? 'unknown')) continue;
    picked.push(c);
  }
  picked.sort((a, b) => (b.createdAt > a.createdAt ? 1 : b.createdAt < a.createdAt ? -1 : 0));
  return picked.slice(0, truncateCount(picked.length, filter.latest ?? false, filter.last ?? 0));
}

export interface PsOptions extends ContainerFilter {
  quiet: boolean;
  noTrunc: boolean;
  output: OutputFormat;
  verbose?: boolean;
  /** crictl's --resolve-image-path: the image's first repo tag instead of what the container names. */
  resolveImagePath?: boolean;
}

export async function psCommand(clients: CriClients, options: PsOptions): Promise<string> {
  const containers = await listContainers(clients, options);
  if (options.output !== 'table') return formatStructured({ containers: containers.map((c) => messageJson(ContainerSchema, c)) }, options.output);
  if (options.quiet) return containers.map((c) => `${c.id}\n`).join('');
  // The kubelet's labels name the pod; crictl says "unknown" without them.
  const fromLabels = (c: (typeof containers)[number], key: string) => c.labels[key] ?? 'unknown';
  if (options.verbose) {
    return containers
      .map((c) =>
        [
          `ID: ${c.id}`,
          `PodID: ${c.podSandboxId}`,
          `Namespace: ${fromLabels(c, 'io.kubernetes.pod.namespace')}`,
          ...(c.metadata?.name ? [`Name: ${c.metadata.name}`] : []),
          ...(c.metadata ? [`Attempt: ${c.metadata.attempt}`] : []),
          `State: ${stateNames[c.state]}`,
          ...(c.image ? [`Image: ${c.image.image}`] : []),
          `Created: ${humanDuration(Date.now() - Number(c.createdAt / 1_000_000n))} ago`,
          ...labelLines(c.labels, c.annotations),
        ].join('\n') + '\n\n',
      )
      .join('');
  }
  const rows: string[][] = [];
  for (const c of containers) {
    let image = c.image?.image ?? '';
    // An image given as a digest (the kubelet gives the image id) is shortened as an id.
    const digest = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-fA-F0-9]{32,})$/.exec(image);
    if (!options.noTrunc && digest) image = digest[2]!.slice(0, 13);
    if (options.resolveImagePath) {
      // crictl's getRepoImage: the image's first repo tag, else the name as it was.
      const status = await call('failed to fetch repo image', () => clients.image.imageStatus({ image: { image } }, { timeoutMs: clients.settings.timeoutMs }));
      image = status.image?.repoTags[0] ?? image;
    }
    rows.push([
        options.noTrunc ? c.id : truncateId(c.id),
        image,
        `${humanDuration(Date.now() - Number(c.createdAt / 1_000_000n))} ago`,
        stateNames[c.state],
        c.metadata?.name ?? '',
        String(c.metadata?.attempt ?? 0),
        options.noTrunc ? c.podSandboxId : truncateId(c.podSandboxId),
        fromLabels(c, 'io.kubernetes.pod.name'),
        fromLabels(c, 'io.kubernetes.pod.namespace'),
    ]);
  }
  return formatTable(['CONTAINER', 'IMAGE', 'CREATED', 'STATE', 'NAME', 'ATTEMPT', 'POD ID', 'POD', 'NAMESPACE'], rows);
}

/**
 * inspect: the given containers, or without ids those a filter picks (crictl's rule).
 * `verbose: false` (crictl's -q) leaves the runtime's info out.
 */
export async function inspectContainersCommand(clients: CriClients, ids: string[], output: OutputFormat, template = '', verbose = true, filter?: ContainerFilter): Promise<string> {
  if (ids.length === 0 && filter) ids = (await listContainers(clients, filter)).map((c) => c.id);
  if (ids.length === 0) throw new NothingSelected();
  const docs: unknown[] = [];
  let table = '';
  for (const id of ids) {
    const response = await call(`getting the status of the container "${id}"`, () =>
      clients.runtime.containerStatus({ containerId: id, verbose }, { timeoutMs: clients.settings.timeoutMs }),
    );
    const s = response.status;
    const ago = (ns: bigint) => `${humanDuration(Date.now() - Number(ns / 1_000_000n))} ago`;
    if (output === 'table') {
      // crictl's outputContainerStatusTable.
      const lines = [`ID: ${s?.id ?? ''}`];
      if (s?.metadata?.name) lines.push(`Name: ${s.metadata.name}`);
      if (s?.metadata?.attempt) lines.push(`Attempt: ${s.metadata.attempt}`);
      const state = s?.state ?? ContainerState.CONTAINER_CREATED;
      lines.push(`State: ${ContainerState[state]}`, `Created: ${ago(s?.createdAt ?? 0n)}`);
      if (state !== ContainerState.CONTAINER_CREATED) lines.push(`Started: ${ago(s?.startedAt ?? 0n)}`);
      if (state === ContainerState.CONTAINER_EXITED) {
        if ((s?.finishedAt ?? 0n) > 0n) lines.push(`Finished: ${ago(s!.finishedAt)}`);
        lines.push(`Exit Code: ${s?.exitCode ?? 0}`);
      }
      lines.push(...labelLines(s?.labels ?? {}, s?.annotations ?? {}), ...(verbose ? [`Info: ${goMapString(response.info)}`] : []));
      table += lines.join('\n') + '\n';
      continue;
    }
    let status: unknown = null;
    if (s) {
      // As crictl: times as RFC 3339, the zero time for a start or finish that has not happened.
      const started = s.state !== ContainerState.CONTAINER_CREATED;
      const finished = s.state === ContainerState.CONTAINER_EXITED || (s.state === ContainerState.CONTAINER_UNKNOWN && s.finishedAt > 0n);
      status = statusJson(ContainerStatusSchema, s, {
        createdAt: rfc3339Nano(s.createdAt),
        startedAt: rfc3339Nano(started ? s.startedAt : undefined),
        finishedAt: rfc3339Nano(finished ? s.finishedAt : undefined),
      });
    }
    docs.push(withInfo({ status }, response.info));
  }
  return output === 'table' ? table : formatStatusDocs(docs, output, template);
}

export async function stopContainersCommand(clients: CriClients, ids: string[], timeoutSeconds: number): Promise<string> {
  let out = '';
  for (const id of ids) {
    await call(`stopping the container "${id}"`, () =>
      clients.runtime.stopContainer({ containerId: id, timeout: BigInt(timeoutSeconds) }, { timeoutMs: timeoutSeconds * 1000 + long(clients) }),
    );
    out += `${id}\n`;
  }
  return out;
}

/**
 * rm: as crictl, a removed container's log file and its rotations (LOG.*) are deleted
 * too, unless `keepLogs` (crictl's --keep-logs); a file that cannot go is reported on
 * stderr and does not fail the removal.
 */
export async function removeContainersCommand(clients: CriClients, ids: string[], options: { all: boolean; force: boolean; keepLogs?: boolean }): Promise<string> {
  let targets = ids;
  if (options.all) targets = (await call('listing containers', () => clients.runtime.listContainers({}, { timeoutMs: long(clients) }))).containers.map((c) => c.id);
  else if (targets.length === 0) throw new Error('rm: give at least one container id, or --all');
  let out = '';
  for (const id of targets) {
    const status = await call(`getting the status of the container "${id}"`, () => clients.runtime.containerStatus({ containerId: id }, { timeoutMs: long(clients) }));
    if (status.status?.state === ContainerState.CONTAINER_RUNNING) {
      if (!options.force) throw new Error(`container "${id}" is running, please stop it first`);
      await call(`stopping the container "${id}"`, () => clients.runtime.stopContainer({ containerId: id, timeout: 0n }, { timeoutMs: long(clients) }));
      // As crictl: the stop prints the id, and so does the removal.
      out += `${id}\n`;
    }
    await call(`removing the container "${id}"`, () => clients.runtime.removeContainer({ containerId: id }, { timeoutMs: long(clients) }));
    const logPath = status.status?.logPath ?? '';
    if (!options.keepLogs && logPath !== '') await removeLogFiles(id, logPath);
    out += `${id}\n`;
  }
  return out;
}

/** A container's log file and its rotations (crictl: filepath.Glob(LOG + ".*") and LOG). */
async function removeLogFiles(id: string, logPath: string): Promise<void> {
  const prefix = `${basename(logPath)}.`;
  const rotations = (await readdir(dirname(logPath)).catch(() => [] as string[])).filter((f) => f.startsWith(prefix)).map((f) => join(dirname(logPath), f));
  for (const file of [...rotations, logPath]) {
    await rm(file).catch((err: NodeJS.ErrnoException) => process.stderr.write(`berthctl: removing log file ${file} for container "${id}" failed: ${err.code ?? err.message}\n`));
  }
}

export interface LogsOptions {
  follow: boolean;
  tail?: number;
  timestamps: boolean;
  /** Only lines logged at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** The log of the previous attempt (the kubelet's <name>/<attempt>.log layout). */
  previous?: boolean;
  /** Stop after this many bytes of output. */
  limitBytes?: number;
  /** Only this stream's lines (crictl's --stream stdout|stderr). */
  stream?: 'stdout' | 'stderr';
  /** ReopenContainerLog first (crictl's --reopen). */
  reopen?: boolean;
}

/** --since as crictl takes it: an RFC 3339 time, or a duration back from now (42m). */
export function parseSince(text: string, now = Date.now()): number {
  const time = Date.parse(text);
  if (!Number.isNaN(time) && /^\d{4}-/.test(text)) return time;
  try {
    return now - parseDuration(text);
  } catch {
    throw new Error(`--since "${text}" is neither an RFC 3339 time nor a duration like 42m`);
  }
}

/** The previous attempt's log beside the current one: …/<attempt>.log → …/<attempt-1>.log. */
function previousLogPath(path: string, attempt: number): string {
  const suffix = `${attempt}.log`;
  if (attempt < 1 || !path.endsWith(suffix)) throw new Error(`container has no previous attempt's log (attempt ${attempt}, log ${path})`);
  return `${path.slice(0, -suffix.length)}${attempt - 1}.log`;
}

/** Reads the container's CRI log file (berthctl runs on the node, as crictl does). */
export async function logsCommand(clients: CriClients, id: string, options: LogsOptions, write: (text: string, stream: 'stdout' | 'stderr') => void): Promise<void> {
  if (options.reopen) await call('reopen container logs', () => clients.runtime.reopenContainerLog({ containerId: id }, { timeoutMs: clients.settings.timeoutMs }));
  const status = await call(`getting the status of the container "${id}"`, () => clients.runtime.containerStatus({ containerId: id }, { timeoutMs: clients.settings.timeoutMs }));
  const current = status.status?.logPath;
  if (!current) throw new Error(`container "${id}" has no log path`);
  const path = options.previous ? previousLogPath(current, status.status?.metadata?.attempt ?? 0) : current;
  let budget = options.limitBytes ?? Infinity;
  /** --since, for the lines there are and the lines that come. */
  const inWindow = (line: string) => options.sinceMs === undefined || Date.parse(line.slice(0, line.indexOf(' '))) >= options.sinceMs;
  const emit = (line: string) => {
    const match = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(line);
    if (!match || budget <= 0) return;
    const [, time, stream, tag, text] = match;
    if (options.stream !== undefined && stream !== options.stream) return;
    let out = `${options.timestamps ? `${time} ` : ''}${text}${tag === 'F' ? '\n' : ''}`;
    // Cut at a character boundary: a streaming decode holds back a split character.
    if (Buffer.byteLength(out) > budget) out = new TextDecoder().decode(Buffer.from(out).subarray(0, budget), { stream: true });
    budget -= Buffer.byteLength(out);
    write(out, stream as 'stdout' | 'stderr');
  };
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (options.previous) throw new Error(`cannot read the previous attempt's log ${path}: ${err.code ?? err.message}`);
    return '';
  });
  let lines = text.split('\n').filter(Boolean);
  // As crictl: --since first, then --tail of what is left.
  lines = lines.filter(inWindow);
  if (options.tail !== undefined && options.tail >= 0) lines = lines.slice(Math.max(0, lines.length - options.tail));
  lines.forEach(emit);
  if (!options.follow || options.previous) return;
  let offset = Buffer.byteLength(text);
  let rest = '';
  for (;;) {
    const size = (await stat(path).catch(() => undefined))?.size ?? 0;
    if (size > offset) {
      for await (const chunk of createReadStream(path, { start: offset, end: size - 1 })) rest += chunk.toString();
      offset = size;
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      parts.filter(inWindow).forEach(emit);
    }
    const state = (await clients.runtime.containerStatus({ containerId: id }, { timeoutMs: clients.settings.timeoutMs })).status?.state;
    if (state === ContainerState.CONTAINER_EXITED && size <= offset) return;
    await sleep(250);
  }
}

/** exec --sync: output printed as it was, exit code propagated (crictl's behaviour). */
export async function execSyncCommand(clients: CriClients, id: string, command: string[], timeoutSeconds: number): Promise<{ stdout: Uint8Array; stderr: Uint8Array; exitCode: number }> {
  const response = await call(`executing in the container "${id}"`, () =>
    clients.runtime.execSync({ containerId: id, cmd: command, timeout: BigInt(timeoutSeconds) }, { timeoutMs: timeoutSeconds > 0 ? timeoutSeconds * 1000 + 30_000 : 0 }),
  );
  return response;
}

export interface StatsOptions {
  /** A container id (crictl's [ID] or --id). */
  id?: string;
  pod?: string;
  labels?: string[];
  /** Stopped containers too (crictl skips those with neither CPU time nor memory). */
  all: boolean;
  output: OutputFormat;
  /** CPU % is measured between two samples this far apart (crictl's --seconds, default 1). */
  sampleMs?: number;
}

const byId = <T extends { attributes?: { id: string } }>(a: T, b: T) => {
  const x = a.attributes?.id ?? '';
  const y = b.attributes?.id ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
};

/** CPU % between two cumulative samples, as crictl computes it. */
function cpuPercent(now: { usage: bigint; at: bigint }, before: { usage: bigint; at: bigint }): string {
  if (now.usage === 0n) return '0.00';
  const duration = now.at - before.at;
  if (duration === 0n) throw new Error('cpu stat is not updated during sample');
  return ((Number(now.usage - before.usage) / Number(duration)) * 100).toFixed(2);
}

/** berthctl stats: crictl's table (CPU % over a sample, MEM, DISK, INODES, SWAP), JSON, YAML. */
export async function statsCommand(clients: CriClients, options: StatsOptions): Promise<string> {
  const filter = { id: options.id ?? '', podSandboxId: options.pod ?? '', labelSelector: parseLabelSelector(options.labels ?? []) };
  const list = async () =>
    (await call('get container stats', () => clients.runtime.listContainerStats({ filter }, { timeoutMs: clients.settings.timeoutMs }))).stats.sort(byId);
  const first = await list();
  if (options.output !== 'table') return formatStructured({ stats: first.map((s) => messageJson(ContainerStatsSchema, s)) }, options.output);
  const before = new Map(first.map((s) => [s.attributes?.id ?? '', s]));
  await sleep(options.sampleMs ?? 1000);
  const rows: string[][] = [];
  for (const s of await list()) {
    const cpu = s.cpu?.usageCoreNanoSeconds?.value ?? 0n;
    const mem = s.memory?.workingSetBytes?.value ?? 0n;
    if (!options.all && cpu === 0n && mem === 0n) continue;
    const old = before.get(s.attributes?.id ?? '');
    if (!old) continue;
    rows.push([
      truncateId(s.attributes?.id ?? ''),
      s.attributes?.metadata?.name ?? '',
      cpuPercent({ usage: cpu, at: s.cpu?.timestamp ?? 0n }, { usage: old.cpu?.usageCoreNanoSeconds?.value ?? 0n, at: old.cpu?.timestamp ?? 0n }),
      humanSize(Number(mem)),
      humanSize(Number(s.writableLayer?.usedBytes?.value ?? 0n)),
      String(s.writableLayer?.inodesUsed?.value ?? 0n),
      humanSize(Number(s.swap?.swapUsageBytes?.value ?? 0n)),
    ]);
  }
  return CLEAR_SCREEN + formatTable(['CONTAINER', 'NAME', 'CPU %', 'MEM', 'DISK', 'INODES', 'SWAP'], rows);
}

/** berthctl statsp: crictl's table (POD, POD ID, CPU % over a sample, MEM), JSON, YAML. */
export async function podStatsCommand(clients: CriClients, options: { id?: string; labels?: string[]; output: OutputFormat; sampleMs?: number }): Promise<string> {
  const filter = { id: options.id ?? '', labelSelector: parseLabelSelector(options.labels ?? []) };
  const list = async () =>
    (await call('get pod stats: list pod sandbox stats', () => clients.runtime.listPodSandboxStats({ filter }, { timeoutMs: clients.settings.timeoutMs }))).stats.sort(byId);
  const first = await list();
  if (options.output !== 'table') return formatStructured({ stats: first.map((s) => messageJson(PodSandboxStatsSchema, s)) }, options.output);
  const before = new Map(first.map((s) => [s.attributes?.id ?? '', s]));
  await sleep(options.sampleMs ?? 1000);
  const rows: string[][] = [];
  for (const s of await list()) {
    const cpu = s.linux?.cpu?.usageCoreNanoSeconds?.value ?? 0n;
    const mem = s.linux?.memory?.workingSetBytes?.value ?? 0n;
    if (cpu === 0n && mem === 0n) continue;
    const old = before.get(s.attributes?.id ?? '');
    if (!old) continue;
    rows.push([
      s.attributes?.metadata?.name ?? '',
      truncateId(s.attributes?.id ?? ''),
      cpuPercent({ usage: cpu, at: s.linux?.cpu?.timestamp ?? 0n }, { usage: old.linux?.cpu?.usageCoreNanoSeconds?.value ?? 0n, at: old.linux?.cpu?.timestamp ?? 0n }),
      humanSize(Number(mem)),
    ]);
  }
  return CLEAR_SCREEN + formatTable(['POD', 'POD ID', 'CPU %', 'MEM'], rows);
}

export interface UpdateOptions {
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  memory?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  oomScoreAdj?: number;
  /** Windows only (crictl sends them in the Windows resources). */
  cpuCount?: number;
  cpuMaximum?: number;
}

export async function updateCommand(clients: CriClients, ids: string[], options: UpdateOptions): Promise<string> {
  let out = '';
  for (const id of ids) {
    await call(`updating the container "${id}"`, () =>
      clients.runtime.updateContainerResources(
        {
          containerId: id,
          linux: {
            cpuShares: BigInt(options.cpuShares ?? 0),
            cpuQuota: BigInt(options.cpuQuota ?? 0),
            cpuPeriod: BigInt(options.cpuPeriod ?? 0),
            memoryLimitInBytes: BigInt(options.memory ?? 0),
            cpusetCpus: options.cpusetCpus ?? '',
            cpusetMems: options.cpusetMems ?? '',
            oomScoreAdj: BigInt(options.oomScoreAdj ?? 0),
          },
          ...(options.cpuCount !== undefined || options.cpuMaximum !== undefined
            ? { windows: { cpuCount: BigInt(options.cpuCount ?? 0), cpuMaximum: BigInt(options.cpuMaximum ?? 0) } }
            : {}),
        },
        { timeoutMs: clients.settings.timeoutMs },
      ),
    );
    out += `${id}\n`;
  }
  return out;
}

/** The local terminal's size and its changes, for TTY sessions. */
function localTerminal(tty: boolean): { resize?: EventEmitter<{ resize: [TerminalSize] }>; initialSize?: TerminalSize; restore: () => void } {
  if (!tty || !process.stdout.isTTY) return { restore: () => undefined };
  const resize = new EventEmitter<{ resize: [TerminalSize] }>();
  const size = (): TerminalSize => ({ width: process.stdout.columns, height: process.stdout.rows });
  const onResize = () => resize.emit('resize', size());
  process.stdout.on('resize', onResize);
  return { resize, initialSize: size(), restore: () => process.stdout.off('resize', onResize) };
}

export interface StreamCommandOptions {
  stdin: boolean;
  tty: boolean;
  /** spdy (the default) or websocket. */
  transport?: StreamTransport;
  /** crictl's --tls-* flags, for an https streaming URL. */
  tls?: StreamTls;
}

async function streamSession(url: string, options: StreamCommandOptions): Promise<number> {
  const terminal = localTerminal(options.tty);
  const raw = options.tty && options.stdin && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  try {
    return await remoteCommand(url, {
      transport: options.transport,
      tls: options.tls,
      stdin: options.stdin ? process.stdin : undefined,
      stdout: process.stdout,
      stderr: process.stderr,
      tty: options.tty,
      resize: terminal.resize,
      initialSize: terminal.initialSize,
    });
  } finally {
    if (raw) process.stdin.setRawMode(false);
    terminal.restore();
    // stdin may be paused in a read: let the process end.
    process.stdin.destroy();
  }
}

/** exec (streaming): Exec for a URL, then the remote-command protocol; resolves with the exit code. */
export async function execCommand(clients: CriClients, id: string, command: string[], options: StreamCommandOptions): Promise<number> {
  const response = await call(`executing in the container "${id}"`, () =>
    clients.runtime.exec({ containerId: id, cmd: command, stdin: options.stdin, stdout: true, stderr: !options.tty, tty: options.tty }, { timeoutMs: clients.settings.timeoutMs }),
  );
  return streamSession(response.url, options);
}

/** attach: Attach for a URL, then the remote-command protocol. */
export async function attachCommand(clients: CriClients, id: string, options: StreamCommandOptions): Promise<number> {
  const response = await call(`attaching to the container "${id}"`, () =>
    clients.runtime.attach({ containerId: id, stdin: options.stdin, stdout: true, stderr: !options.tty, tty: options.tty }, { timeoutMs: clients.settings.timeoutMs }),
  );
  return streamSession(response.url, options);
}

/** port-forward POD [ADDRESS:]LOCAL:REMOTE: runs until interrupted or the session ends. */
export async function portForwardCommand(clients: CriClients, podId: string, mapping: string, log: (line: string) => void, transport: StreamTransport = 'spdy', tls?: StreamTls): Promise<void> {
  const match = /^(?:(.+):)?(\d+):(\d+)$/.exec(mapping);
  if (!match) throw new Error(`port mapping "${mapping}" is not [ADDRESS:]LOCAL:REMOTE`);
  const [address, local, remote] = [match[1] ?? '127.0.0.1', Number(match[2]), Number(match[3])];
  const request = async () => (await call(`port forwarding to the pod "${podId}"`, () => clients.runtime.portForward({ podSandboxId: podId, port: [remote] }, { timeoutMs: clients.settings.timeoutMs }))).url;
  // The first URL also proves the pod is there; over WebSocket each connection needs
  // its own (a URL is single-use), and a spare one is only used while it is fresh.
  let spare: { url: string; at: number } | undefined = { url: await request(), at: Date.now() };
  const urlFor = async () => {
    const fresh = spare && Date.now() - spare.at < 20_000 ? spare.url : undefined;
    spare = undefined;
    return fresh ?? request();
  };
  const { server, closed } = await portForward(urlFor, address, local, remote, (message) => log(`error: ${message}`), transport, tls);
  const bound = server.address() as AddressInfo;
  log(`Forwarding from ${address}:${bound.port} -> ${remote}`);
  const stop = () => server.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await Promise.race([closed, new Promise<void>((resolve) => server.on('close', () => resolve()))]);
}
