// CRI pod sandbox messages to berth's sandbox types and back.
import { hostname as osHostname } from 'node:os';
import { create, toJson, type MessageInitShape } from '@bufbuild/protobuf';
import {
  NamespaceMode as CriNamespaceMode,
  PodSandboxConfigSchema,
  PodSandboxState,
  Protocol,
  type PodSandboxConfig,
  type PodSandboxSchema,
  type PodSandboxStatusSchema,
} from '../gen/runtime/v1/api_pb.js';
import { invalidArgument } from '../errors.js';
import { podBandwidth } from '../util/quantity.js';
import type { IdMapping, NamespaceMode, PortMapping, SandboxRecord, SandboxSpec, UserNamespaceSpec } from '../pod/sandbox-types.js';
import { checkRunAsGroup, seccompChoiceFrom } from './security-translate.js';

const namespaceModes: Record<CriNamespaceMode, NamespaceMode> = {
  [CriNamespaceMode.POD]: 'pod',
  [CriNamespaceMode.CONTAINER]: 'container',
  [CriNamespaceMode.NODE]: 'node',
  [CriNamespaceMode.TARGET]: 'target',
};
const criNamespaceModes = Object.fromEntries(Object.entries(namespaceModes).map(([k, v]) => [v, Number(k)])) as Record<NamespaceMode, CriNamespaceMode>;

const protocols: Record<Protocol, PortMapping['protocol']> = { [Protocol.TCP]: 'tcp', [Protocol.UDP]: 'udp', [Protocol.SCTP]: 'sctp' };

/** A CRI namespace mode in berth's terms (absent: POD, the proto's default). */
export function namespaceModeFrom(value: CriNamespaceMode | undefined): NamespaceMode {
  const known = namespaceModes[value ?? CriNamespaceMode.POD];
  if (!known) throw invalidArgument(`unknown namespace mode ${value}`);
  return known;
}

/** Linux's HOST_NAME_MAX: sethostname(2) refuses longer names. */
export const HOSTNAME_MAX_BYTES = 64;

/**
 * The one place a pod's hostname is decided (its UTS namespace, /etc/hostname, /etc/hosts
 * and every container's OCI hostname follow it). A request without one gets the node's,
 * as containerd does (the kubelet names none for host-network pods, and the CRI allows
 * none only for them). A pod on the node's network shares the node's UTS namespace too
 * (berth ties UTS to the network), so its hostname is the node's whatever it asked for.
 */
export function podHostname(requested: string, hostNetwork: boolean, nodeHostname: () => string = osHostname): string {
  const bytes = Buffer.byteLength(requested);
  if (bytes > HOSTNAME_MAX_BYTES) {
    throw invalidArgument(`RunPodSandbox: hostname "${requested}" is ${bytes} bytes; a hostname has at most ${HOSTNAME_MAX_BYTES}`);
  }
  return hostNetwork || requested === '' ? nodeHostname() : requested;
}

export interface SandboxTranslateOptions {
  /** The node's hostname (os.hostname() unless a test gives another). */
  nodeHostname?: () => string;
}

export function sandboxSpecFrom(config: PodSandboxConfig | undefined, runtimeHandler: string, translate: SandboxTranslateOptions = {}): SandboxSpec {
  if (!config) throw invalidArgument('RunPodSandbox: config is required');
  const metadata = config.metadata;
  if (!metadata) throw invalidArgument('RunPodSandbox: config.metadata is required');
  const security = config.linux?.securityContext;
  const options = security?.namespaceOptions;
  const mode = namespaceModeFrom;
  if (!metadata.name || !metadata.namespace || !metadata.uid) throw invalidArgument('pod sandbox metadata needs a name, a namespace and a uid');
  const network = mode(options?.network);
  if (network === 'target' || network === 'container') throw invalidArgument(`network namespace mode ${network.toUpperCase()} is not valid for a pod`);
  // berth runs no sandbox process that a profile or a user would apply to (the pod's
  // init is catatonit as nobody), but a malformed request is refused as containerd does.
  checkRunAsGroup(security?.runAsGroup, security?.runAsUser, '');
  seccompChoiceFrom(security?.seccomp, security?.seccompProfilePath ?? '', { type: 'unconfined' });
  return {
    name: metadata.name,
    uid: metadata.uid,
    namespace: metadata.namespace,
    attempt: metadata.attempt,
    hostname: podHostname(config.hostname, network === 'node', translate.nodeHostname),
    logDirectory: config.logDirectory,
    dns: config.dnsConfig ? { servers: config.dnsConfig.servers, searches: config.dnsConfig.searches, options: config.dnsConfig.options } : undefined,
    portMappings: config.portMappings.map((p) => {
      const protocol = protocols[p.protocol];
      if (!protocol) throw invalidArgument(`unknown port mapping protocol ${p.protocol}`);
      if (p.containerPort <= 0 || p.containerPort > 65535 || p.hostPort < 0 || p.hostPort > 65535) {
        throw invalidArgument(`port mapping ${p.hostPort}:${p.containerPort} is out of range`);
      }
      return { protocol, containerPort: p.containerPort, hostPort: p.hostPort, hostIp: p.hostIp };
    }),
    labels: { ...config.labels },
    annotations: { ...config.annotations },
    bandwidth: podBandwidth(config.annotations),
    cgroupParent: config.linux?.cgroupParent ?? '',
    namespaces: { network, pid: mode(options?.pid), ipc: mode(options?.ipc), targetId: options?.targetId ?? '' },
    ...usernsFrom(options?.usernsOptions, { network, pid: mode(options?.pid), ipc: mode(options?.ipc) }),
    sysctls: { ...(config.linux?.sysctls ?? {}) },
    runtimeHandler,
  };
}

/**
 * The pod's user namespace (`userns_options`, the kubelet's hostUsers: false): mode NODE
 * (or none) is the host's; POD takes exactly one uid and one gid mapping of the kubelet's
 * kind (container id 0 mapped, as critest and the kubelet require). CONTAINER and TARGET
 * are not modes a pod's user namespace has. The pod's network, IPC and PID namespaces must
 * be its own: a user namespace cannot mount /proc for the host's PID namespace nor sysfs
 * for the host's network namespace.
 */
function usernsFrom(
  userns: { mode: CriNamespaceMode; uids: Array<{ containerId: number; hostId: number; length: number }>; gids: Array<{ containerId: number; hostId: number; length: number }> } | undefined,
  others: { network: NamespaceMode; pid: NamespaceMode; ipc: NamespaceMode },
): { userns?: UserNamespaceSpec } {
  const mode = namespaceModeFrom(userns?.mode ?? CriNamespaceMode.NODE);
  if (!userns || mode === 'node') return {};
  if (mode !== 'pod') throw invalidArgument(`user namespace mode ${mode.toUpperCase()} is not supported: a pod's user namespace is POD or NODE`);
  const one = (list: typeof userns.uids, what: string): IdMapping => {
    if (list.length !== 1) throw invalidArgument(`user namespace POD needs exactly one ${what} mapping, got ${list.length}`);
    const m = list[0]!;
    if (m.containerId !== 0) throw invalidArgument(`user namespace POD: the ${what} mapping must map container id 0 (it maps ${m.containerId})`);
    if (m.length === 0) throw invalidArgument(`user namespace POD: the ${what} mapping has length 0`);
    if (m.hostId === 0) throw invalidArgument(`user namespace POD: the ${what} mapping maps container root to host id 0`);
    return { containerId: m.containerId, hostId: m.hostId, length: m.length };
  };
  const spec = { uids: [one(userns.uids, 'uid')], gids: [one(userns.gids, 'gid')] };
  for (const [name, value] of Object.entries(others)) {
    if (value === 'node') throw invalidArgument(`user namespace POD needs the pod's own ${name} namespace, not the node's`);
  }
  return { userns: spec };
}

const criProtocols = Object.fromEntries(Object.entries(protocols).map(([k, v]) => [v, Number(k)])) as Record<PortMapping['protocol'], Protocol>;

/**
 * The pod's config in the CRI's JSON shape (verbose PodSandboxStatus's "config", as
 * containerd reports it), rebuilt from what berth keeps of the request.
 */
export function sandboxConfigJsonOf(spec: SandboxSpec): unknown {
  const config = create(PodSandboxConfigSchema, {
    metadata: metadataOf(spec),
    hostname: spec.hostname,
    logDirectory: spec.logDirectory,
    dnsConfig: spec.dns,
    portMappings: spec.portMappings.map((p) => ({ protocol: criProtocols[p.protocol], containerPort: p.containerPort, hostPort: p.hostPort, hostIp: p.hostIp })),
    labels: spec.labels,
    annotations: spec.annotations,
    linux: {
      cgroupParent: spec.cgroupParent,
      sysctls: spec.sysctls,
      securityContext: {
        namespaceOptions: {
          network: criNamespaceModes[spec.namespaces.network],
          pid: criNamespaceModes[spec.namespaces.pid],
          ipc: criNamespaceModes[spec.namespaces.ipc],
          targetId: spec.namespaces.targetId,
          ...(spec.userns ? { usernsOptions: { mode: CriNamespaceMode.POD, uids: spec.userns.uids, gids: spec.userns.gids } } : {}),
        },
      },
    },
  });
  return toJson(PodSandboxConfigSchema, config);
}

function criState(record: SandboxRecord): PodSandboxState {
  return record.state === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

function metadataOf(spec: SandboxSpec) {
  return { name: spec.name, uid: spec.uid, namespace: spec.namespace, attempt: spec.attempt };
}

export function toCriSandboxStatus(record: SandboxRecord): MessageInitShape<typeof PodSandboxStatusSchema> {
  const { spec } = record;
  const [ip, ...more] = record.network?.ips ?? [];
  return {
    id: record.id,
    metadata: metadataOf(spec),
    state: criState(record),
    createdAt: BigInt(record.createdAt),
    network: { ip: ip ?? '', additionalIps: more.map((address) => ({ ip: address })) },
    linux: {
      namespaces: {
        options: {
          network: criNamespaceModes[spec.namespaces.network],
          pid: criNamespaceModes[spec.namespaces.pid],
          ipc: criNamespaceModes[spec.namespaces.ipc],
          targetId: spec.namespaces.targetId,
          ...(spec.userns ? { usernsOptions: { mode: CriNamespaceMode.POD, uids: spec.userns.uids, gids: spec.userns.gids } } : {}),
        },
      },
    },
    labels: spec.labels,
    annotations: spec.annotations,
    runtimeHandler: spec.runtimeHandler,
  };
}

export function toCriSandbox(record: SandboxRecord): MessageInitShape<typeof PodSandboxSchema> {
  const { spec } = record;
  return {
    id: record.id,
    metadata: metadataOf(spec),
    state: criState(record),
    createdAt: BigInt(record.createdAt),
    labels: spec.labels,
    annotations: spec.annotations,
    runtimeHandler: spec.runtimeHandler,
  };
}
