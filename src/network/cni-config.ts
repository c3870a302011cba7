// Reads CNI network configuration the way libcni does: every .conflist, .conf and .json
// file of the configured dir, in lexicographic order of file name; single-plugin .conf
// files are wrapped as one-plugin lists. The first valid list is the pod network.
// A list may also take plugins from the sibling folder named after the network (CNI spec
// 1.1 `loadOnlyInlinedPlugins`); those are appended to its own, as libcni does.
import { statSync, watch, type FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CniPluginConf {
  type: string;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  /** The file it came from. */
  file: string;
  name: string;
  /** The list's own `cniVersion`, as written. */
  cniVersion: string;
  /** The list's `cniVersions` (CNI 1.1), as written; empty when absent. */
  cniVersions: string[];
  disableCheck: boolean;
  disableGC: boolean;
  plugins: CniPluginConf[];
  /** The list exactly as written (what plugins see, less the per-plugin part). */
  raw: Record<string, unknown>;
}

export interface NetworkConfigScan {
  lists: NetworkConfigList[];
  /** One line per file that could not be used, naming the file and the problem. */
  problems: string[];
}

/** The spec versions berth speaks: 0.3.0 brought the result shape we rely on. */
export const SUPPORTED_CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

const CONFIG_EXTENSIONS = ['.conflist', '.conf', '.json'];
/** The spec's rule for network names (and container ids): safe in file paths. */
export const CNI_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** `read`, when given, collects every path the scan looked at (files and folders, found or not). */
export async function scanNetworkConfigs(confDir: string, read?: string[]): Promise<NetworkConfigScan> {
  let names: string[];
  try {
    names = await readdir(confDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { lists: [], problems: [code === 'ENOENT' ? `${confDir} does not exist` : `cannot read ${confDir}: ${(err as Error).message}`] };
  }
  const files = names.filter((n) => CONFIG_EXTENSIONS.some((ext) => n.endsWith(ext))).sort();
  const scan: NetworkConfigScan = { lists: [], problems: [] };
  for (const name of files) {
    const file = join(confDir, name);
    read?.push(file);
    try {
      const text = await readFile(file, 'utf8');
      const extra = await siblingPlugins(confDir, text, file, read);
      scan.lists.push(parseNetworkConfig(text, file, extra));
    } catch (err) {
      scan.problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  return scan;
}

/** The pod network: the first valid list of confDir, or why there is none. */
export async function podNetworkConfig(confDir: string, read?: string[]): Promise<PodNetwork> {
  const scan = await scanNetworkConfigs(confDir, read);
  const first = scan.lists[0];
  if (first) return { list: first, problems: scan.problems };
  return { list: undefined, why: scan.problems.length > 0 ? scan.problems.join('; ') : `no network config (.conflist, .conf, .json) found in ${confDir}` };
}

export type PodNetwork = { list: NetworkConfigList; problems: string[] } | { list: undefined; why: string };

/**
 * The pod network of a conf dir, read again only when something it was read from may
 * have changed (libcni's callers, containerd's CRI plugin among them, watch the dir with
 * inotify the same way). Every RunPodSandbox, StopPodSandbox and runtime status asks for
 * it: a full scan was a readdir and a read of each file (and of the network's plugin
 * folder) through the thread pool, and a JSON parse, each time.
 *
 * Checked on each call, synchronously, by the identity of what the last scan read: the
 * dir's own stat (an entry added, removed or renamed changes its mtime) and each file's
 * and folder's (inode, size, mtime, ctime; missing ones as missing), a few µs from the
 * dentry cache. A rewrite in place within one tick of the kernel's coarse file clock with
 * the same size keeps those, so an inotify watch on the dir marks the scan stale as well
 * (it speaks asynchronously; the stat check is what makes a config dropped in just
 * before a call count at once).
 */
export class NetworkConfigWatch {
  readonly #confDir: string;
  #scan?: { network: PodNetwork; paths: string[]; stamp: string };
  #stale = true;
  #watcher?: FSWatcher;

  constructor(confDir: string) {
    this.#confDir = confDir;
  }

  async podNetwork(): Promise<PodNetwork> {
    const scan = this.#scan;
    if (scan && !this.#stale && stamp(scan.paths) === scan.stamp) return scan.network;
    // A new watch with each scan: one on a dir that was removed and made again is dead.
    this.close();
    this.#watch();
    // Marked fresh and the dir stamped before reading: a file added meanwhile shows next
    // time. The files are stamped after the read; one rewritten in place between its read
    // and its stamp is left to the watch, which marks the scan stale.
    this.#stale = false;
    const stamps = new Map<string, string>([[this.#confDir, stampOf(this.#confDir)]]);
    const read: string[] = [];
    const network = await podNetworkConfig(this.#confDir, read);
    for (const path of read) if (!stamps.has(path)) stamps.set(path, stampOf(path));
    this.#scan = { network, paths: [...stamps.keys()], stamp: [...stamps.values()].join('|') };
    return network;
  }

  /** Stops watching (tests; berthd's watch lives as long as it does). */
  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  #watch(): void {
    try {
      // Not persistent: it never keeps berthd (or a test) alive.
      const watcher = watch(this.#confDir, { persistent: false }, () => (this.#stale = true));
      watcher.on('error', () => {
        // The dir went (or the watch broke): stat checks alone until the next scan watches again.
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = undefined;
        this.#stale = true;
      });
      this.#watcher = watcher;
    } catch {
      // No dir yet: the next scan tries again.
    }
  }
}

/** One NetworkConfigWatch per conf dir, shared by the CNI manager and the readiness check. */
const watches = new Map<string, NetworkConfigWatch>();
export function networkConfigWatch(confDir: string): NetworkConfigWatch {
  let found = watches.get(confDir);
  if (!found) watches.set(confDir, (found = new NetworkConfigWatch(confDir)));
  return found;
}

/** What a scan read, as one string: any difference means read again. */
function stamp(paths: string[]): string {
  return paths.map(stampOf).join('|');
}

/** A path's identity and times (ns), or "-" when it cannot be stat'ed. */
export function stampOf(path: string): string {
  const s = statSync(path, { bigint: true, throwIfNoEntry: false });
  return s ? `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.mode}` : '-';
}

/**
 * Parses one config file; a .conf/.json holding a single plugin becomes a one-plugin
 * list. `extraPlugins` (from the network's sibling folder) are appended to a list's own.
 */
export function parseNetworkConfig(text: string, file: string, extraPlugins: CniPluginConf[] = []): NetworkConfigList {
  const raw = parseObject(text);
  const isList = isListDocument(raw, file);
  if (typeof raw.name !== 'string' || raw.name === '') throw new Error('has no "name"');
  if (!CNI_NAME_PATTERN.test(raw.name)) {
    throw new Error(`network name ${JSON.stringify(raw.name)} is not valid (letters, digits, "_", "." and "-", starting with a letter or digit)`);
  }
  if (typeof raw.cniVersion !== 'string' || raw.cniVersion === '') throw new Error('has no "cniVersion"');
  let cniVersions: string[] = [];
  if (raw.cniVersions !== undefined) {
    if (!Array.isArray(raw.cniVersions) || raw.cniVersions.some((v) => typeof v !== 'string')) throw new Error('"cniVersions" must be a list of strings');
    cniVersions = raw.cniVersions as string[];
  }
  if (![raw.cniVersion, ...cniVersions].some(isSupportedVersion)) {
    const written = cniVersions.length > 0 ? `cniVersion ${raw.cniVersion} / cniVersions ${cniVersions.join(', ')}` : `cniVersion ${raw.cniVersion}`;
    throw new Error(`${written} is not supported (berth speaks CNI ${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  }
  let plugins: unknown;
  if (isList) {
    if (raw.plugins !== undefined && !Array.isArray(raw.plugins)) throw new Error('"plugins" must be a list');
    if (raw.loadOnlyInlinedPlugins === true && raw.plugins === undefined) throw new Error('"loadOnlyInlinedPlugins" needs "plugins"');
    plugins = [...((raw.plugins as unknown[] | undefined) ?? []), ...extraPlugins];
  } else {
    plugins = [raw];
  }
  if (!Array.isArray(plugins) || plugins.length === 0) throw new Error('has no "plugins"');
  plugins.forEach((plugin, i) => checkPlugin(plugin, `plugin ${i}`));
  return {
    file,
    name: raw.name,
    cniVersion: raw.cniVersion,
    cniVersions,
    disableCheck: raw.disableCheck === true,
    disableGC: raw.disableGC === true,
    plugins: plugins as CniPluginConf[],
    raw,
  };
}

export function isSupportedVersion(version: string): boolean {
  return (SUPPORTED_CNI_VERSIONS as readonly string[]).includes(version);
}

/** Compares two "x.y.z" versions numerically (-1, 0, 1). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

function parseObject(text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('must be a JSON object');
  return doc as Record<string, unknown>;
}

function isListDocument(raw: Record<string, unknown>, file: string): boolean {
  return !file.endsWith('.conf') && !file.endsWith('.json') ? true : Array.isArray(raw.plugins);
}

function checkPlugin(plugin: unknown, what: string): void {
  if (typeof plugin !== 'object' || plugin === null || Array.isArray(plugin)) throw new Error(`${what} is not a JSON object`);
  const type = (plugin as CniPluginConf).type;
  if (typeof type !== 'string' || type === '') throw new Error(`${what} has no "type"`);
  // The type names a binary in the plugin dirs: it must not reach anywhere else.
  if (/[/\\]/.test(type) || type === '.' || type === '..') throw new Error(`${what} has type ${JSON.stringify(type)}, which is not a plugin file name`);
}

/**
 * Plugin objects from `<confDir>/<network name>/*.conf` (sorted), for a list that does
 * not set loadOnlyInlinedPlugins. A missing folder means none.
 */
async function siblingPlugins(confDir: string, text: string, file: string, read?: string[]): Promise<CniPluginConf[]> {
  let raw: Record<string, unknown>;
  try {
    raw = parseObject(text);
  } catch {
    return []; // parseNetworkConfig reports it
  }
  if (!isListDocument(raw, file) || raw.loadOnlyInlinedPlugins === true) return [];
  if (typeof raw.name !== 'string' || !CNI_NAME_PATTERN.test(raw.name)) return [];
  const dir = join(confDir, raw.name);
  read?.push(dir);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort();
  } catch {
    return [];
  }
  const plugins: CniPluginConf[] = [];
  for (const name of names) {
    const path = join(dir, name);
    read?.push(path);
    let plugin: Record<string, unknown>;
    try {
      plugin = parseObject(await readFile(path, 'utf8'));
      checkPlugin(plugin, 'the plugin');
    } catch (err) {
      throw new Error(`plugin file ${path}: ${(err as Error).message}`);
    }
    plugins.push(plugin as CniPluginConf);
  }
  return plugins;
}
