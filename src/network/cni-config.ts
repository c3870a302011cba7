// Reads CNI network configuration the way libcni does: every .conflist, .conf and .json
// file of the configured dir, in lexicographic order of file name; single-plugin .conf
// files are wrapped as one-plugin lists. The first valid list is the pod network.
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
  cniVersion: string;
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

const CONFIG_EXTENSIONS = ['.conflist', '.conf', '.json'];

export async function scanNetworkConfigs(confDir: string): Promise<NetworkConfigScan> {
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
    try {
      scan.lists.push(parseNetworkConfig(await readFile(file, 'utf8'), file));
    } catch (err) {
      scan.problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  return scan;
}

/** Parses one config file; a .conf/.json holding a single plugin becomes a one-plugin list. */
export function parseNetworkConfig(text: string, file: string): NetworkConfigList {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('must be a JSON object');
  const raw = doc as Record<string, unknown>;
  const isList = !file.endsWith('.conf') && !file.endsWith('.json') ? true : Array.isArray(raw.plugins);
  const plugins = isList ? raw.plugins : [raw];
  if (typeof raw.name !== 'string' || raw.name === '') throw new Error('has no "name"');
  if (typeof raw.cniVersion !== 'string' || raw.cniVersion === '') throw new Error('has no "cniVersion"');
  if (!Array.isArray(plugins) || plugins.length === 0) throw new Error('has no "plugins"');
  plugins.forEach((plugin, i) => {
    if (typeof plugin !== 'object' || plugin === null || typeof (plugin as CniPluginConf).type !== 'string') {
      throw new Error(`plugin ${i} has no "type"`);
    }
  });
  return {
    file,
    name: raw.name,
    cniVersion: raw.cniVersion,
    disableCheck: raw.disableCheck === true,
    disableGC: raw.disableGC === true,
    plugins: plugins as CniPluginConf[],
    raw,
  };
}
