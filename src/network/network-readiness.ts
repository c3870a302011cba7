// Whether pods can get a network: a usable CNI config list exists in the configured dir.
// Checked on every call (read again when a file of the dir changed: NetworkConfigWatch),
// so a config dropped in later turns NetworkReady true without a restart.
import { networkConfigWatch } from './cni-config.js';

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
      const found = await networkConfigWatch(confDir).podNetwork();
      if (found.list) return { ready: true, network: found.list.name, file: found.list.file, message: found.problems.join('; ') };
      return { ready: false, message: `cni config load failed: ${found.why}` };
    },
  };
}
