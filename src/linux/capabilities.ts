// Linux capability names by bit number, and the set this process may hand on: runc can
// grant a container no capability berthd's own bounding set lacks (this machine kind
// runs without CAP_SYS_RESOURCE), so "ALL" and privileged mean "all that the host has",
// as containerd takes them from its own process.
import { readFile } from 'node:fs/promises';

/** Index = capability number (linux/capability.h). */
export const CAPABILITY_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

let cached: Promise<string[]> | undefined;

/** The capabilities in this process's bounding set, by name (read once). */
export function hostCapabilities(): Promise<string[]> {
  cached ??= readFile('/proc/self/status', 'utf8').then((status) => {
    const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    if (!hex) return [...CAPABILITY_NAMES];
    const mask = BigInt(`0x${hex}`);
    return CAPABILITY_NAMES.filter((_, bit) => ((mask >> BigInt(bit)) & 1n) === 1n);
  });
  return cached;
}
