// berth's CNI library (the part libcni plays for containerd and CRI-O): picks the pod
// network from the conf dir, runs its plugin chain for ADD, CHECK, DEL, GC and STATUS
// as the CNI spec's section 3 says, and keeps each attachment's result on disk so CHECK
// and DEL get their prevResult after a restart too.
import { isNamespaceFile } from '../linux/namespaces.js';
import { BerthError, invalidArgument, failedPrecondition } from '../errors.js';
import { KeyedMutex, SharedExclusiveLock } from '../util/locks.js';
import { CNI_NAME_PATTERN, compareVersions, isSupportedVersion, networkConfigWatch, stampOf, type CniPluginConf, type NetworkConfigList } from './cni-config.js';
import { CniCache, type CniCacheEntry } from './cni-cache.js';
import { execPlugin, findPlugin, VersionProbe, type CniCommand } from './cni-exec.js';
import { allSettled } from '../util/all-settled.js';
import { checkResult, convertResult, parseResult, type CniResult } from './cni-result.js';

export { CniError } from './cni-exec.js';
export type { CniCommand } from './cni-exec.js';
export type { CniResult } from './cni-result.js';
export type { CniCacheEntry } from './cni-cache.js';
export type { CniPluginConf, NetworkConfigList } from './cni-config.js';

export interface PortMappingConf {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

/** Bits per second and bits, as the bandwidth plugin takes them. */
export interface BandwidthConf {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/**
 * Capability arguments (the CNI conventions): each reaches only the plugins whose
 * config declares `"capabilities": {"<key>": true}`, as `runtimeConfig.<key>`.
 * Other convention keys (cgroupPath, io.kubernetes.cri.pod-annotations…) pass the same way.
 */
export interface CniCapabilityArgs {
  portMappings?: PortMappingConf[];
  bandwidth?: BandwidthConf;
  ips?: string[];
  mac?: string;
  dns?: { servers?: string[]; searches?: string[]; options?: string[] };
  [key: string]: unknown;
}

export interface CniAttachment {
  /** CNI_CONTAINERID: the pod sandbox id. */
  containerId: string;
  /** CNI_NETNS: path of the pinned netns file. */
  netns: string;
  /** CNI_IFNAME, "eth0". */
  ifName: string;
  /** CNI_ARGS, e.g. K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID, IgnoreUnknown=1. */
  args?: Array<[string, string]>;
  capabilityArgs?: CniCapabilityArgs;
}

export interface CniOptions {
  confDir: string;
  binDirs: string[];
  /** Where results are cached (one file per attachment, under `results/`). */
  cacheDir: string;
  /** Per plugin execution; default 60 s. A plugin that takes longer is killed. */
  timeoutMs?: number;
}

/** A plugin of a list, with the binary that runs it. */
interface ResolvedPlugin {
  conf: CniPluginConf;
  path: string;
  /** The IPAM plugin's binary it delegates to, '' when none. */
  ipamPath: string;
}

interface ResolvedList {
  /** The spec version negotiated for this list and its plugins. */
  version: string;
  plugins: ResolvedPlugin[];
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class CniManager {
  readonly #options: Required<CniOptions>;
  readonly #cache: CniCache;
  readonly #probe: VersionProbe;
  /**
   * Each list's plugins as last resolved, with the stamp of what that looked at: the
   * plugin dirs (a binary added or removed changes a dir's mtime, e.g. one that would now
   * shadow a later dir's) and each binary found (replaced or upgraded in place, or no
   * longer executable). Checked by a few synchronous stats per ADD and DEL instead of a
   * stat and an access of every binary and a stat for the version probe through the
   * thread pool. Keyed by what the resolution reads of a list (its name, versions and
   * plugin types), so the list DEL gets from the CNI cache matches the one ADD used.
   */
  readonly #resolved = new Map<string, { stamp: string; value: ResolvedList }>();
  /** The spec forbids parallel operations on one attachment… */
  readonly #attachmentLocks = new KeyedMutex();
  /** …and any ADD/CHECK/DEL while a GC runs. */
  readonly #gcGate = new SharedExclusiveLock();

  constructor(options: CniOptions) {
    this.#options = { ...options, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS };
    this.#cache = new CniCache(options.cacheDir);
    this.#probe = new VersionProbe(this.#options.timeoutMs);
  }

  /**
   * The first valid config list of confDir (lexicographic by file name; .conf/.json
   * single plugins wrapped as lists), or a FailedPrecondition naming what is wrong with
   * each file. Checked on every call (NetworkConfigWatch: read again when a file of the
   * dir changed), so a config dropped in later is used at once.
   */
  async network(): Promise<NetworkConfigList> {
    const found = await networkConfigWatch(this.#options.confDir).podNetwork();
    if (found.list) return found.list;
    throw failedPrecondition(`no usable CNI network config: ${found.why}`);
  }

  /**
   * The spec version berth uses for a list: the highest of its cniVersion/cniVersions
   * that berth speaks and every plugin's VERSION lists (the spec lets runtimes consider
   * the plugins' versions; that way a list offering 1.1.0 and 1.0.0 still works with
   * plugins that stop at 1.0.0).
   */
  async negotiateVersion(list: NetworkConfigList): Promise<string> {
    return (await this.#resolve(list)).version;
  }

  /**
   * ADD through the whole chain in order, each plugin getting the previous one's result.
   * The final result is cached on disk before this returns. When plugin N fails, DEL
   * runs for plugins N..0 (N too: a plugin may fail half-way, e.g. bridge after making
   * the veth when IPAM fails) and the plugin's error is thrown.
   */
  async add(list: NetworkConfigList, attachment: CniAttachment): Promise<CniResult> {
    checkAttachment(attachment);
    return this.#locked(list, attachment, async () => {
      const [, { version, plugins }] = await allSettled([requireNetns(attachment.netns, 'ADD'), this.#resolve(list)] as const);
      const args = attachment.args ?? [];
      const capabilityArgs = attachment.capabilityArgs ?? {};
      const env = this.#env('ADD', attachment.containerId, attachment.netns, attachment.ifName, args);
      let prevResult: CniResult | undefined;
      let started = 0;
      try {
        for (const plugin of plugins) {
          started++;
          const stdin = requestConfig(list.name, version, plugin.conf, { capabilityArgs, prevResult });
          prevResult = parseResult(await this.#exec('ADD', plugin, env, stdin), version, plugin.conf.type);
        }
        const result = prevResult!;
        await this.#cache.put({
          kind: 'berthCniCacheV1',
          networkName: list.name,
          containerId: attachment.containerId,
          ifName: attachment.ifName,
          netns: attachment.netns,
          cniVersion: version,
          args,
          capabilityArgs,
          config: list,
          result,
        });
        return result;
      } catch (err) {
        const undo = { version, plugins: plugins.slice(0, started), netns: attachment.netns, args, capabilityArgs, prevResult };
        const failures = await this.#undoAdd(list, attachment, undo);
        const error = err instanceof Error ? err : new Error(String(err));
        const extra = failures.filter((f) => f !== error.message);
        if (extra.length > 0) error.message += ` (undoing the ADD also failed: ${extra.join('; ')})`;
        throw error;
      }
    });
  }

  /**
   * CHECK with the cached result as prevResult. Does nothing when the list sets
   * disableCheck or its version predates CHECK (0.4.0).
   */
  async check(list: NetworkConfigList, attachment: CniAttachment): Promise<void> {
    checkAttachment(attachment);
    if (list.disableCheck) return;
    await this.#locked(list, attachment, async () => {
      const { version, plugins } = await this.#resolve(list);
      if (compareVersions(version, '0.4.0') < 0) return;
      const cached = await this.#cachedEntry(list.name, attachment.containerId, attachment.ifName, version);
      if (!cached) {
        throw failedPrecondition(`cannot CHECK ${describe(list, attachment)}: there is no cached result of its ADD`);
      }
      await requireNetns(attachment.netns, 'CHECK');
      const args = attachment.args ?? cached.args;
      const capabilityArgs = attachment.capabilityArgs ?? cached.capabilityArgs;
      const env = this.#env('CHECK', attachment.containerId, attachment.netns, attachment.ifName, args);
      for (const plugin of plugins) {
        const stdin = requestConfig(list.name, version, plugin.conf, { capabilityArgs, prevResult: cached.result });
        await this.#exec('CHECK', plugin, env, stdin);
      }
    });
  }

  /**
   * DEL in reverse order with the cached result as prevResult (0.4.0 and later). The
   * attachment's args and capability args are those recorded at ADD when there is a
   * cache entry (portmap, for one, removes nothing unless DEL names the mappings again).
   * A netns that is gone (or no longer a namespace) is passed as "" (CNI_NETNS is
   * optional for DEL), so plugins release what lives outside it. A missing cache is
   * fine. The cache entry goes only when every plugin succeeded. Idempotent.
   */
  async del(list: NetworkConfigList, attachment: CniAttachment): Promise<void> {
    checkAttachment(attachment, { netnsOptional: true });
    await this.#locked(list, attachment, async () => {
      const { version, plugins } = await this.#resolve(list);
      const cached = await this.#cachedEntry(list.name, attachment.containerId, attachment.ifName, version);
      const netns = (await isLiveNetns(attachment.netns)) ? attachment.netns : '';
      await this.#delChain(list, attachment, {
        version,
        plugins,
        netns,
        args: cached?.args ?? attachment.args ?? [],
        capabilityArgs: cached?.capabilityArgs ?? attachment.capabilityArgs ?? {},
        prevResult: cached?.result,
      });
      await this.#cache.delete(list.name, attachment.containerId, attachment.ifName);
    });
  }

  /** The cached result of an attachment, if any (for status after a restart). */
  async cachedResult(networkName: string, containerId: string, ifName: string): Promise<CniResult | undefined> {
    return (await this.cachedAttachment(networkName, containerId, ifName))?.result;
  }

  /** The whole cache entry: result, the parameters and the config list it was added with. */
  cachedAttachment(networkName: string, containerId: string, ifName: string): Promise<CniCacheEntry | undefined> {
    return this.#cachedEntry(networkName, containerId, ifName);
  }

  /** Every cached attachment (of one network, if named): what ADD made and no DEL undid yet. */
  cachedAttachments(networkName?: string): Promise<CniCacheEntry[]> {
    return this.#cache.list(networkName);
  }

  /**
   * GC (spec 1.1.0 and later, unless disableGC): every plugin is told which attachments
   * are still valid (`cni.dev/valid-attachments`) and may free the rest. Runs alone: it
   * waits for ADD/CHECK/DEL in flight, and new ones wait for it. Every plugin runs even
   * when one fails; the failures are thrown together. For older versions, a no-op.
   */
  async gc(list: NetworkConfigList, valid: Array<{ containerId: string; ifName: string }>): Promise<void> {
    if (list.disableGC) return;
    await this.#gcGate.exclusive(async () => {
      const { version, plugins } = await this.#resolve(list);
      if (compareVersions(version, '1.1.0') < 0) return;
      const attachments = valid.map((a) => ({ containerID: a.containerId, ifname: a.ifName }));
      const env = { CNI_COMMAND: 'GC', CNI_PATH: this.#cniPath() };
      const failures: Error[] = [];
      for (const plugin of plugins) {
        // libcni also sends the key under the name an earlier spec draft used.
        const stdin = requestConfig(list.name, version, plugin.conf, { extra: { 'cni.dev/valid-attachments': attachments, 'cni.dev/attachments': attachments } });
        await this.#exec('GC', plugin, env, stdin).catch((err: Error) => failures.push(err));
      }
      if (failures.length === 1) throw failures[0];
      if (failures.length > 1) {
        throw new BerthError(failures.every((f) => f instanceof BerthError && f.code === 'Unavailable') ? 'Unavailable' : 'Internal', `GC of network "${list.name}" failed: ${failures.map((f) => f.message).join('; ')}`);
      }
    });
  }

  /**
   * STATUS (spec 1.1.0 and later): whether every plugin can serve ADD; the first that
   * cannot is thrown. For older versions it succeeds once every plugin binary is found
   * and speaks the list's version.
   */
  async status(list: NetworkConfigList): Promise<void> {
    const { version, plugins } = await this.#resolve(list);
    if (compareVersions(version, '1.1.0') < 0) return;
    const env = { CNI_COMMAND: 'STATUS', CNI_PATH: this.#cniPath() };
    for (const plugin of plugins) {
      await this.#exec('STATUS', plugin, env, requestConfig(list.name, version, plugin.conf, {}));
    }
  }

  /** Finds every plugin binary (and IPAM binary) and negotiates the spec version; cached per list while its binaries stay the same. */
  async #resolve(list: NetworkConfigList): Promise<ResolvedList> {
    const key = JSON.stringify([list.name, list.cniVersion, list.cniVersions, list.plugins.map((p) => [p.type, (p.ipam as { type?: unknown } | undefined)?.type])]);
    const hit = this.#resolved.get(key);
    if (hit && hit.stamp === this.#binStamp(hit.value.plugins)) return { version: hit.value.version, plugins: hit.value.plugins.map((p, i) => ({ ...p, conf: list.plugins[i]! })) };
    // The dirs are stamped before the lookups, the binaries before their version probes.
    const dirsStamp = this.#binStamp([]);
    if (!CNI_NAME_PATTERN.test(list.name)) throw invalidArgument(`CNI network name ${JSON.stringify(list.name)} is not valid`);
    if (list.plugins.length === 0) throw failedPrecondition(`CNI network "${list.name}" has no plugins`);
    const dirs = this.#options.binDirs;
    // Every binary is looked up at once (a few stats each, on the way to every ADD and DEL);
    // the first plugin in order that is missing is the one named.
    const found = await Promise.allSettled(
      list.plugins.map(async (conf): Promise<ResolvedPlugin> => {
        // A missing IPAM plugin fails inside the main plugin, after it changed things:
        // better to refuse before anything runs.
        const ipam = conf.ipam as { type?: unknown } | undefined;
        const [path, ipamPath] = await allSettled([findPlugin(conf.type, dirs, list.name), ipam && typeof ipam.type === 'string' && ipam.type !== '' ? findPlugin(ipam.type, dirs, list.name, 'IPAM plugin') : Promise.resolve('')] as const);
        return { conf, path, ipamPath };
      }),
    );
    const missing = found.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (missing) throw missing.reason;
    const plugins = found.map((r) => (r as PromiseFulfilledResult<ResolvedPlugin>).value);
    const stamp = dirsStamp + this.#pathsStamp(plugins);
    const offered = [...new Set([list.cniVersion, ...(list.cniVersions ?? [])])];
    const candidates = offered.filter(isSupportedVersion).sort((a, b) => compareVersions(b, a));
    if (candidates.length === 0) {
      throw failedPrecondition(`CNI network "${list.name}" (${list.file}) offers CNI ${offered.join(', ')}, none of which berth speaks`);
    }
    const versions = await Promise.all(plugins.map((plugin) => this.#probe.supportedVersions(plugin.conf.type, plugin.path, this.#cniPath())));
    const supported = new Map<string, string[]>(plugins.map((plugin, i) => [plugin.conf.type, versions[i]!]));
    const version = candidates.find((v) => [...supported.values()].every((versions) => versions.includes(v)));
    if (!version) {
      const lacking = [...supported].filter(([, versions]) => !candidates.some((v) => versions.includes(v)));
      const who = (lacking.length > 0 ? lacking : [...supported]).map(([type, versions]) => `${type} supports ${versions.join(', ')}`).join('; ');
      throw failedPrecondition(`CNI network "${list.name}" (${list.file}) needs CNI ${candidates.join(' or ')}, which its plugins do not all support: ${who}`);
    }
    const value = { version, plugins };
    // A handful of networks at most over a node's life; bounded all the same.
    if (this.#resolved.size >= 16) this.#resolved.clear();
    this.#resolved.set(key, { stamp, value });
    return value;
  }

  /** The plugin dirs' stamps and, with plugins, their binaries' (and IPAM binaries'). */
  #binStamp(plugins: ResolvedPlugin[]): string {
    return this.#options.binDirs.map(stampOf).join('|') + this.#pathsStamp(plugins);
  }

  #pathsStamp(plugins: ResolvedPlugin[]): string {
    let out = '';
    for (const plugin of plugins) out += `|${stampOf(plugin.path)}${plugin.ipamPath ? `/${stampOf(plugin.ipamPath)}` : ''}`;
    return out;
  }

  /** DEL of the given plugins in reverse order; halts at the first failure (as the spec says). */
  async #delChain(list: NetworkConfigList, attachment: CniAttachment, run: DelRun): Promise<void> {
    const env = this.#env('DEL', attachment.containerId, run.netns, attachment.ifName, run.args);
    // prevResult on DEL came with spec 0.4.0.
    const prevResult = run.prevResult && compareVersions(run.version, '0.4.0') >= 0 ? run.prevResult : undefined;
    for (const plugin of [...run.plugins].reverse()) {
      const stdin = requestConfig(list.name, run.version, plugin.conf, { capabilityArgs: run.capabilityArgs, prevResult });
      await this.#exec('DEL', plugin, env, stdin);
    }
  }

  /** Undoes a failed ADD: DEL for each plugin that ran, in reverse, carrying on past failures. */
  async #undoAdd(list: NetworkConfigList, attachment: CniAttachment, run: DelRun): Promise<string[]> {
    const failures: string[] = [];
    for (const plugin of [...run.plugins].reverse()) {
      const netns = (await isLiveNetns(run.netns)) ? run.netns : '';
      await this.#delChain(list, attachment, { ...run, netns, plugins: [plugin] }).catch((err: Error) => failures.push(err.message));
    }
    return failures;
  }

  #exec(command: CniCommand, plugin: ResolvedPlugin, env: Record<string, string>, stdin: string): Promise<string> {
    return execPlugin({ command, plugin: plugin.conf.type, path: plugin.path, env, stdin, timeoutMs: this.#options.timeoutMs });
  }

  #env(command: CniCommand, containerId: string, netns: string, ifName: string, args: Array<[string, string]>): Record<string, string> {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: netns,
      CNI_IFNAME: ifName,
      CNI_ARGS: args.map(([k, v]) => `${k}=${v}`).join(';'),
      CNI_PATH: this.#cniPath(),
    };
  }

  #cniPath(): string {
    return this.#options.binDirs.join(':');
  }

  /** The cache entry with its result checked (and converted to `version`); unusable means none. */
  async #cachedEntry(networkName: string, containerId: string, ifName: string, version?: string): Promise<CniCacheEntry | undefined> {
    const entry = await this.#cache.get(networkName, containerId, ifName);
    if (!entry) return undefined;
    try {
      return { ...entry, result: checkResult(entry.result, version ?? entry.cniVersion, 'the cached result') };
    } catch {
      return undefined;
    }
  }

  #locked<T>(list: NetworkConfigList, attachment: CniAttachment, work: () => Promise<T>): Promise<T> {
    const key = `${list.name}+${attachment.containerId}+${attachment.ifName}`;
    return this.#gcGate.shared(() => this.#attachmentLocks.lock(key, work));
  }
}

interface DelRun {
  version: string;
  plugins: ResolvedPlugin[];
  netns: string;
  args: Array<[string, string]>;
  capabilityArgs: CniCapabilityArgs;
  prevResult?: CniResult;
}

/**
 * The request config for one plugin (spec section 3): the plugin's object as written,
 * less the reserved keys (capabilities, runtimeConfig, prevResult, cni.dev/*), plus the
 * list's name, the negotiated cniVersion, runtimeConfig with the capability arguments
 * this plugin declared, and prevResult when there is one.
 */
export function requestConfig(
  name: string,
  version: string,
  plugin: CniPluginConf,
  options: { capabilityArgs?: CniCapabilityArgs; prevResult?: CniResult; extra?: Record<string, unknown> },
): string {
  const conf: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(plugin)) {
    if (key === 'capabilities' || key === 'runtimeConfig' || key === 'prevResult' || key.startsWith('cni.dev/')) continue;
    conf[key] = value;
  }
  conf.name = name;
  conf.cniVersion = version;
  const runtimeConfig: Record<string, unknown> = {};
  const capabilities = plugin.capabilities;
  if (options.capabilityArgs && typeof capabilities === 'object' && capabilities !== null) {
    for (const [key, enabled] of Object.entries(capabilities)) {
      const value = options.capabilityArgs[key];
      if (enabled === true && value !== undefined) runtimeConfig[key] = value;
    }
  }
  // As libcni: only when there is something to say (plugins read a missing one as empty).
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (options.prevResult) conf.prevResult = convertResult(options.prevResult, version);
  Object.assign(conf, options.extra ?? {});
  return JSON.stringify(conf);
}

/** The spec's rules for the attachment parameters; InvalidArgument otherwise. */
function checkAttachment(attachment: CniAttachment, options: { netnsOptional?: boolean } = {}): void {
  const { containerId, ifName, netns } = attachment;
  if (!CNI_NAME_PATTERN.test(containerId)) {
    throw invalidArgument(`CNI container id ${JSON.stringify(containerId)} is not valid (letters, digits, "_", "." and "-", starting with a letter or digit)`);
  }
  // The kernel's rules for interface names (libcni checks the same).
  if (ifName === '' || ifName.length > 15 || ifName === '.' || ifName === '..' || /[/:\s]/.test(ifName)) {
    throw invalidArgument(`CNI interface name ${JSON.stringify(ifName)} is not valid`);
  }
  if (!options.netnsOptional && !netns) throw invalidArgument('a CNI attachment needs a network namespace path');
  for (const [key, value] of attachment.args ?? []) {
    if (key === '' || /[;=]/.test(key) || value.includes(';')) {
      throw invalidArgument(`CNI_ARGS entry ${JSON.stringify(`${key}=${value}`)} is not valid (keys need a name without ";" or "=", values no ";")`);
    }
  }
}

/**
 * True when the path is a namespace file (a pinned bind mount or /proc/PID/ns/net).
 * Asked directly: nsfs answers from memory, and through the thread pool this was two
 * hand-overs between threads on the way to every ADD's first plugin.
 */
async function isLiveNetns(path: string): Promise<boolean> {
  return path !== '' && isNamespaceFile(path);
}

async function requireNetns(path: string, command: CniCommand): Promise<void> {
  if (!(await isLiveNetns(path))) {
    throw failedPrecondition(`cannot run CNI ${command}: ${path} is not a network namespace (it does not exist or is no longer pinned)`);
  }
}

function describe(list: NetworkConfigList, attachment: CniAttachment): string {
  return `the attachment of ${attachment.containerId} (${attachment.ifName}) to network "${list.name}"`;
}
