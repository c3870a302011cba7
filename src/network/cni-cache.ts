// The result cache: what the last plugin of a successful ADD returned, with the
// parameters and config it was added with, one file per attachment (network,
// container, interface). CHECK and DEL need it as prevResult, also after berthd
// restarted, so it is written atomically before ADD returns and removed only when DEL
// succeeded. Atomically, not fsynced (as libcni writes its cache, without even the
// rename): a killed berthd finds it whole; a host crash ends the netns, and what it may
// lose or bring back costs at most a DEL without prevResult or a second DEL (host-local
// releases by container id), while an fsync costs 7-16 ms on every pod start here.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isAtomicTempFile, writeJsonAtomic } from '../store/atomic-file.js';
import type { NetworkConfigList } from './cni-config.js';
import type { CniResult } from './cni-result.js';

export interface CniCacheEntry {
  kind: 'berthCniCacheV1';
  networkName: string;
  containerId: string;
  ifName: string;
  netns: string;
  /** The spec version the attachment was added with. */
  cniVersion: string;
  args: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
  /** The config list it was added with (DEL can use it when the conf dir changed since). */
  config: NetworkConfigList;
  result: CniResult;
}

export class CniCache {
  readonly #dir: string;

  constructor(cacheDir: string) {
    this.#dir = join(cacheDir, 'results');
  }

  /**
   * `<network>+<container>+<ifname>.json`: network names and container ids cannot hold
   * "+", so the name is unambiguous (a "-" separator, as libcni uses, is not).
   */
  path(networkName: string, containerId: string, ifName: string): string {
    return join(this.#dir, `${networkName}+${containerId}+${ifName}.json`);
  }

  async put(entry: CniCacheEntry): Promise<void> {
    await writeJsonAtomic(this.path(entry.networkName, entry.containerId, entry.ifName), entry, { durable: false });
  }

  /** The entry, or undefined when there is none or it cannot be read (a DEL must still run). */
  async get(networkName: string, containerId: string, ifName: string): Promise<CniCacheEntry | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(networkName, containerId, ifName), 'utf8');
    } catch {
      return undefined;
    }
    return parseEntry(text);
  }

  async delete(networkName: string, containerId: string, ifName: string): Promise<void> {
    await rm(this.path(networkName, containerId, ifName), { force: true });
  }

  /** Every readable entry, optionally of one network only. */
  async list(networkName?: string): Promise<CniCacheEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch {
      return [];
    }
    const entries: CniCacheEntry[] = [];
    for (const name of names.sort()) {
      if (isAtomicTempFile(name) || !name.endsWith('.json')) continue;
      if (networkName !== undefined && !name.startsWith(`${networkName}+`)) continue;
      const entry = parseEntry(await readFile(join(this.#dir, name), 'utf8').catch(() => ''));
      if (entry && (networkName === undefined || entry.networkName === networkName)) entries.push(entry);
    }
    return entries;
  }
}

function parseEntry(text: string): CniCacheEntry | undefined {
  try {
    const entry = JSON.parse(text) as CniCacheEntry;
    if (entry?.kind !== 'berthCniCacheV1' || typeof entry.result !== 'object' || entry.result === null) return undefined;
    return entry;
  } catch {
    return undefined;
  }
}
