// A pod's loopback interface. Pod networks (CNI config lists) set up eth0 only; the
// runtime brings `lo` up itself. containerd does it by running the loopback plugin as a
// network of its own ("cni-loopback", ifName "lo"); CRI-O and podman just set the link
// up. Both are here: the plain way, and the list for CniManager.add when a caller wants
// containerd's behaviour (its result then shows 127.0.0.1/8 and ::1/128, and it is cached
// and DELeted like any attachment).
import { invalidArgument } from '../errors.js';
import { runCommand } from '../linux/command.js';
import type { NetworkConfigList } from './cni-config.js';

/** Sets `lo` up inside the network namespace pinned at netns (idempotent). */
export async function bringUpLoopback(netns: string): Promise<void> {
  if (!netns) throw invalidArgument('bringing up loopback needs a network namespace path');
  await runCommand('nsenter', [`--net=${netns}`, 'ip', 'link', 'set', 'lo', 'up'], `bringing up loopback in ${netns}`, { timeoutMs: 30_000 });
}

/** The interface name the loopback network is attached as. */
export const LOOPBACK_IFNAME = 'lo';

/** containerd's loopback network, as a list for CniManager (attach it with ifName "lo"). */
export function loopbackNetwork(): NetworkConfigList {
  const raw = { cniVersion: '1.0.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] };
  return {
    file: '(built in)',
    name: raw.name,
    cniVersion: raw.cniVersion,
    cniVersions: [],
    disableCheck: false,
    disableGC: false,
    plugins: raw.plugins,
    raw,
  };
}
