// The systemd cgroup driver's side of process placement: berth's helper processes
// (conmon, a pod's PID namespace init) start in transient scopes of their own, in their
// pod's slice, through `systemd-run --scope` (which asks systemd over its private socket
// as root, and then execs the command: the process keeps systemd-run's pid). systemd
// removes a scope by itself once its last process has exited (--collect: a failed one too).
import { access } from 'node:fs/promises';
import { failedPrecondition } from '../errors.js';
import { parseSystemdCgroup } from './cgroup-names.js';

export const SYSTEMD_RUN = 'systemd-run';
/** The socket systemd (PID 1) answers its manager API on for root; systemd-run and runc use it without a D-Bus daemon. */
export const SYSTEMD_PRIVATE_SOCKET = '/run/systemd/private';

/** The command prefix that runs a command in the scope a systemd-form cgroupsPath names. */
export function scopeCommand(cgroupsPath: string): string[] {
  const systemd = parseSystemdCgroup(cgroupsPath);
  if (!systemd) throw new Error(`"${cgroupsPath}" is not a systemd cgroup (SLICE:PREFIX:NAME)`);
  return [SYSTEMD_RUN, '--scope', '--quiet', '--collect', `--unit=${systemd.unit}`, `--slice=${systemd.slice}`, '--'];
}

/**
 * Refuses the systemd driver on a host where systemd is not the service manager: runc
 * --systemd-cgroup and systemd-run would fail on every container instead.
 */
export async function checkSystemdAvailable(socket = SYSTEMD_PRIVATE_SOCKET): Promise<void> {
  try {
    await access(socket);
  } catch {
    throw failedPrecondition(
      `cgroup_driver = "systemd" needs systemd as this machine's service manager (its manager socket ${socket} does not exist); use cgroup_driver = "cgroupfs" here, and the kubelet's cgroupDriver: cgroupfs`,
    );
  }
}
