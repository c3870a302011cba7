// Whether pods can get a network: a usable CNI config list exists in the configured dir.
// Re-read on every check (a readdir and a few small files), so a config dropped in
// later turns NetworkReady true without a restart.
import { scanNetworkConfigs } from './cni-config.js';

export interface NetworkState {
  ready: boolean;
  /** The network pods join, when ready. */
  network?: string;
  file?: string;
  /** Why not ready, or which files were skipped. */
  message: string;
}

export interface NetworkReadiness {
  check(): Promise<NetworkState>;
}

export function cniNetworkReadiness(confDir: string): NetworkReadiness {
  return {
    async check() {
      const scan = await scanNetworkConfigs(confDir);
      const first = scan.lists[0];
      if (first) return { ready: true, network: first.name, file: first.file, message: scan.problems.join('; ') };
      const why = scan.problems.length > 0 ? scan.problems.join('; ') : `no network config found in ${confDir}`;
      return { ready: false, message: `cni config load failed: ${why}` };
    },
  };
}
