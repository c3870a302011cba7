// Container Device Interface (CDI, github.com/cncf-tags/container-device-interface):
// spec files (JSON or YAML, cdiVersion 0.3.0 – 0.8.0) in the configured directories
// describe devices by fully-qualified name `vendor.com/class=name`; a container that
// asks for one (CRI `CDI_devices`, or the `cdi.k8s.io/<key>` annotations) gets the
// containerEdits of the spec and of the device applied to its OCI config: env, device
// nodes (with a device-cgroup rule), mounts, hooks and additional GIDs. Later directories
// win over earlier ones for the same device (/var/run/cdi over /etc/cdi), as CDI's own
// registry orders them.
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { invalidArgument } from '../errors.js';
import { devicesFromPath, type DeviceNode } from '../linux/devices.js';

export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';
const SUPPORTED_VERSIONS = ['0.3.0', '0.4.0', '0.5.0', '0.6.0', '0.7.0', '0.8.0'];
const HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type CdiHookName = (typeof HOOK_NAMES)[number];

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: 'c' | 'b' | 'u' | 'p';
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  options?: string[];
  type?: string;
}

export interface CdiHook {
  hookName: CdiHookName;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface CdiContainerEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
}

export interface CdiDevice {
  name: string;
  containerEdits: CdiContainerEdits;
}

export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: CdiDevice[];
  containerEdits?: CdiContainerEdits;
  /** The file it was read from. */
  path: string;
}

/** What the spec directories hold: devices by qualified name, and files that could not be read. */
export interface CdiRegistry {
  devices: Map<string, { spec: CdiSpec; device: CdiDevice }>;
  problems: string[];
}

/** A qualified device name `vendor.com/class=name`, or an error message for it. */
export function checkQualifiedName(name: string): string | undefined {
  return /^[A-Za-z0-9][A-Za-z0-9.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*=[A-Za-z0-9][A-Za-z0-9_.:-]*$/.test(name) ? undefined : `CDI device "${name}" is not a qualified name "vendor.com/class=name"`;
}

/**
 * The CDI devices a container asks for: the CRI field's, then those of the `cdi.k8s.io/*`
 * annotations (each a comma-separated list), without repeats. Malformed names are
 * InvalidArgument.
 */
export function requestedCdiDevices(names: string[], annotations: Record<string, string>): string[] {
  const fromAnnotations = Object.keys(annotations)
    .filter((k) => k.startsWith(CDI_ANNOTATION_PREFIX))
    .sort()
    .flatMap((k) => annotations[k]!.split(',').map((n) => n.trim()).filter((n) => n !== ''));
  const all = [...new Set([...names, ...fromAnnotations])];
  for (const name of all) {
    const bad = checkQualifiedName(name);
    if (bad) throw invalidArgument(bad);
  }
  return all;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown, what: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`${what} must be a list of strings`);
  return v as string[];
};
const optionalNumber = (v: unknown, what: string): number | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${what} must be a non-negative integer`);
  return v;
};

function parseEdits(raw: unknown, where: string): CdiContainerEdits {
  if (raw === undefined || raw === null) return {};
  if (!isObject(raw)) throw new Error(`${where}: containerEdits must be a map`);
  const edits: CdiContainerEdits = {};
  const env = strings(raw.env, `${where}: env`);
  if (env) {
    for (const e of env) if (!e.includes('=')) throw new Error(`${where}: env "${e}" is not NAME=VALUE`);
    edits.env = env;
  }
  if (raw.deviceNodes !== undefined && raw.deviceNodes !== null) {
    if (!Array.isArray(raw.deviceNodes)) throw new Error(`${where}: deviceNodes must be a list`);
    edits.deviceNodes = raw.deviceNodes.map((d: unknown, i) => {
      const at = `${where}: deviceNodes[${i}]`;
      if (!isObject(d) || typeof d.path !== 'string' || !d.path.startsWith('/')) throw new Error(`${at} needs an absolute path`);
      if (d.hostPath !== undefined && (typeof d.hostPath !== 'string' || !d.hostPath.startsWith('/'))) throw new Error(`${at}: hostPath must be absolute`);
      if (d.type !== undefined && !['c', 'b', 'u', 'p'].includes(d.type as string)) throw new Error(`${at}: type "${String(d.type)}" is not one of b, c, u, p`);
      if (d.permissions !== undefined && (typeof d.permissions !== 'string' || !/^[rwm]*$/.test(d.permissions))) throw new Error(`${at}: permissions must be letters of "rwm"`);
      return {
        path: d.path,
        hostPath: d.hostPath as string | undefined,
        type: d.type as CdiDeviceNode['type'],
        major: optionalNumber(d.major, `${at}: major`),
        minor: optionalNumber(d.minor, `${at}: minor`),
        fileMode: optionalNumber(d.fileMode, `${at}: fileMode`),
        permissions: d.permissions as string | undefined,
        uid: optionalNumber(d.uid, `${at}: uid`),
        gid: optionalNumber(d.gid, `${at}: gid`),
      };
    });
  }
  if (raw.mounts !== undefined && raw.mounts !== null) {
    if (!Array.isArray(raw.mounts)) throw new Error(`${where}: mounts must be a list`);
    edits.mounts = raw.mounts.map((m: unknown, i) => {
      const at = `${where}: mounts[${i}]`;
      if (!isObject(m) || typeof m.hostPath !== 'string' || typeof m.containerPath !== 'string' || !m.containerPath.startsWith('/')) throw new Error(`${at} needs hostPath and an absolute containerPath`);
      return { hostPath: m.hostPath, containerPath: m.containerPath, options: strings(m.options, `${at}: options`), type: typeof m.type === 'string' ? m.type : undefined };
    });
  }
  if (raw.hooks !== undefined && raw.hooks !== null) {
    if (!Array.isArray(raw.hooks)) throw new Error(`${where}: hooks must be a list`);
    edits.hooks = raw.hooks.map((h: unknown, i) => {
      const at = `${where}: hooks[${i}]`;
      if (!isObject(h) || typeof h.path !== 'string' || !h.path.startsWith('/')) throw new Error(`${at} needs an absolute path`);
      if (!HOOK_NAMES.includes(h.hookName as CdiHookName)) throw new Error(`${at}: hookName "${String(h.hookName)}" is not one of ${HOOK_NAMES.join(', ')}`);
      return { hookName: h.hookName as CdiHookName, path: h.path, args: strings(h.args, `${at}: args`), env: strings(h.env, `${at}: env`), timeout: optionalNumber(h.timeout, `${at}: timeout`) };
    });
  }
  if (raw.additionalGids !== undefined && raw.additionalGids !== null) {
    if (!Array.isArray(raw.additionalGids)) throw new Error(`${where}: additionalGids must be a list`);
    edits.additionalGids = raw.additionalGids.map((g, i) => optionalNumber(g, `${where}: additionalGids[${i}]`)!);
  }
  return edits;
}

// The YAML parser is loaded by the first YAML spec read, not at start-up (idle memory).
let parseYaml: ((text: string) => unknown) | undefined;
function yamlParser(): (text: string) => unknown {
  return (parseYaml ??= (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse);
}

/** Parses one spec document (JSON is YAML too); throws a message naming what is wrong. */
export function parseCdiSpec(text: string, path: string): CdiSpec {
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : yamlParser()(text);
  } catch (err) {
    throw new Error(`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new Error(`${path}: a CDI spec must be a map`);
  const version = String(raw.cdiVersion ?? '');
  if (!SUPPORTED_VERSIONS.includes(version)) throw new Error(`${path}: cdiVersion "${version}" is not supported (${SUPPORTED_VERSIONS[0]} to ${SUPPORTED_VERSIONS.at(-1)})`);
  const kind = raw.kind;
  if (typeof kind !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(kind)) throw new Error(`${path}: kind "${String(kind)}" is not "vendor.com/class"`);
  if (!Array.isArray(raw.devices) || raw.devices.length === 0) throw new Error(`${path}: a CDI spec needs at least one device`);
  const devices = raw.devices.map((d: unknown, i): CdiDevice => {
    if (!isObject(d) || typeof d.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/.test(d.name)) throw new Error(`${path}: devices[${i}] needs a name of letters, digits, _ . : -`);
    return { name: d.name, containerEdits: parseEdits(d.containerEdits, `${path}: device ${d.name}`) };
  });
  return { cdiVersion: version, kind, devices, containerEdits: parseEdits(raw.containerEdits, path), path };
}

/** Reads every *.json, *.yaml and *.yml spec of the directories (missing ones are empty). */
export async function loadCdiRegistry(dirs: string[]): Promise<CdiRegistry> {
  const registry: CdiRegistry = { devices: new Map(), problems: [] };
  for (const dir of dirs) {
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /\.(json|ya?ml)$/.test(n)).sort();
    for (const name of names) {
      const path = join(dir, name);
      try {
        const spec = parseCdiSpec(await readFile(path, 'utf8'), path);
        for (const device of spec.devices) registry.devices.set(`${spec.kind}=${device.name}`, { spec, device });
      } catch (err) {
        registry.problems.push((err as Error).message);
      }
    }
  }
  return registry;
}

/**
 * The edits the named devices bring, spec-level ones once per spec: an unknown device is
 * InvalidArgument naming it (and the spec files that could not be read, if any).
 */
export function cdiEditsFor(registry: CdiRegistry, names: string[]): CdiContainerEdits[] {
  const edits: CdiContainerEdits[] = [];
  const specsDone = new Set<CdiSpec>();
  for (const name of names) {
    const found = registry.devices.get(name);
    if (!found) {
      const also = registry.problems.length > 0 ? ` (unreadable CDI specs: ${registry.problems.join('; ')})` : '';
      throw invalidArgument(`unresolvable CDI device ${name}: no CDI spec defines it${also}`);
    }
    if (!specsDone.has(found.spec)) {
      specsDone.add(found.spec);
      if (found.spec.containerEdits) edits.push(found.spec.containerEdits);
    }
    edits.push(found.device.containerEdits);
  }
  return edits;
}

/** A device node with what the spec leaves out read from the host node (hostPath, else path). */
export interface ResolvedCdiNode extends DeviceNode {
  permissions: string;
  hostPath: string;
}

export async function resolveCdiNodes(edits: CdiContainerEdits[]): Promise<ResolvedCdiNode[]> {
  const nodes: ResolvedCdiNode[] = [];
  for (const node of edits.flatMap((e) => e.deviceNodes ?? [])) {
    const hostPath = node.hostPath ?? node.path;
    let base: DeviceNode | undefined;
    if (node.type === undefined || node.major === undefined || (node.type !== 'p' && node.minor === undefined)) {
      const found = await devicesFromPath(hostPath, node.path).catch((err: Error) => {
        throw invalidArgument(`CDI device node ${node.path}: ${err.message}`);
      });
      base = found[0];
    }
    const type = node.type ?? base?.type ?? 'c';
    nodes.push({
      path: node.path,
      hostPath,
      type: type === 'u' ? 'c' : (type as 'c' | 'b'),
      major: node.major ?? base?.major ?? 0,
      minor: node.minor ?? base?.minor ?? 0,
      fileMode: node.fileMode ?? base?.fileMode ?? 0o666,
      uid: node.uid ?? base?.uid ?? 0,
      gid: node.gid ?? base?.gid ?? 0,
      permissions: node.permissions || 'rwm',
    });
  }
  return nodes;
}

/** An OCI config as far as CDI edits it. */
export interface OciConfigForCdi {
  process: { env: string[]; user: { additionalGids?: number[] } };
  mounts: Array<{ destination: string; type: string; source: string; options: string[] }>;
  hooks?: Partial<Record<CdiHookName, Array<{ path: string; args?: string[]; env?: string[]; timeout?: number }>>>;
  linux: {
    devices: DeviceNode[];
    resources: { devices: Array<{ allow: boolean; access: string; type?: string; major?: number; minor?: number }> };
  };
}

/**
 * Applies the edits to an OCI config in place: env set (a name already there is
 * replaced), device nodes added with a cgroup rule allowing them, mounts after the
 * container's own (a bind when the spec names no type), hooks appended per hook point,
 * additional GIDs added.
 */
export function applyCdiEdits(oci: OciConfigForCdi, edits: CdiContainerEdits[], nodes: ResolvedCdiNode[]): void {
  for (const line of edits.flatMap((e) => e.env ?? [])) {
    const name = line.slice(0, line.indexOf('='));
    oci.process.env = [...oci.process.env.filter((e) => !e.startsWith(`${name}=`)), line];
  }
  for (const node of nodes) {
    const { permissions, hostPath: _host, ...device } = node;
    oci.linux.devices = [...oci.linux.devices.filter((d) => d.path !== device.path), device];
    oci.linux.resources.devices.push({ allow: true, type: device.type, major: device.major, minor: device.minor, access: permissions });
  }
  for (const m of edits.flatMap((e) => e.mounts ?? [])) {
    const type = m.type || 'bind';
    const options = m.options ?? [];
    oci.mounts.push({ destination: m.containerPath, type, source: m.hostPath, options: type === 'bind' && !options.some((o) => o === 'bind' || o === 'rbind') ? ['bind', ...options] : options });
  }
  for (const hook of edits.flatMap((e) => e.hooks ?? [])) {
    oci.hooks ??= {};
    const { hookName, ...rest } = hook;
    (oci.hooks[hookName] ??= []).push(Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as { path: string });
  }
  const gids = edits.flatMap((e) => e.additionalGids ?? []);
  if (gids.length > 0) oci.process.user.additionalGids = [...new Set([...(oci.process.user.additionalGids ?? []), ...gids])];
}
