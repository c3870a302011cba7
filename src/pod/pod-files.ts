// The files every container of a pod shares: hostname, /etc/hosts with the pod's IP and
// name, /etc/resolv.conf from the pod's DNS config (or the host's), and the /dev/shm
// that goes with the pod's IPC namespace (one tmpfs, so POSIX shared memory is shared
// as System V's is, as containerd's sandbox shm is).
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountFilesystem, unmount } from '../linux/mount-calls.js';

export interface DnsSettings {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface PodFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
  /** The pod's /dev/shm (a tmpfs), when the pod has its own IPC namespace. */
  shm: string;
}

export function podFilePaths(podDir: string): PodFiles {
  return { hostname: join(podDir, 'hostname'), hosts: join(podDir, 'hosts'), resolvConf: join(podDir, 'resolv.conf'), shm: join(podDir, 'shm') };
}

/** The kubelet's and containerd's default /dev/shm size. */
const SHM_OPTIONS = 'nosuid,nodev,noexec,mode=1777,size=65536k';

export async function mountPodShm(podDir: string): Promise<void> {
  const { shm } = podFilePaths(podDir);
  // Synchronously: a directory and two stats in the state dir (thread-pool round trips cost more).
  mkdirSync(shm, { recursive: true, mode: 0o1777 });
  // Mounted already when it is on another device than the pod dir (a stat, not a mountinfo read).
  if (statSync(podDir).dev === statSync(shm).dev) await mountFilesystem('tmpfs', 'shm', shm, SHM_OPTIONS, "mounting the pod's /dev/shm");
}

/** Idempotent; a pod without one is fine. */
export async function unmountPodShm(podDir: string): Promise<void> {
  const { shm } = podFilePaths(podDir);
  // Mounted when it is on another device than the pod dir, as mountPodShm decides (two
  // stats, not a read of the whole mount table).
  const own = statSync(shm, { throwIfNoEntry: false });
  const dir = statSync(podDir, { throwIfNoEntry: false });
  if (own && dir && own.dev !== dir.dev) await unmount([shm], true, "unmounting the pod's /dev/shm");
}

function readHostResolvConf(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export async function writePodFiles(podDir: string, hostname: string, ips: string[], dns: DnsSettings | undefined, hostResolvConf = '/etc/resolv.conf'): Promise<PodFiles> {
  const paths = podFilePaths(podDir);
  // In the state dir, which a reboot clears, not fsynced. Written once, into the new pod's
  // own dir while the pod is still being made: no container can read them before they
  // are whole (one is made only in a ready pod), and a berthd killed meanwhile leaves a
  // pod that recovery removes, dir and all. So plain writes, not a temp file renamed
  // over each (three renames fewer per pod, a journalled metadata operation each on ext4).
  // Small files: read and written synchronously.
  const resolv = dns ? resolvConf(dns) : readHostResolvConf(hostResolvConf);
  writeFileSync(paths.hostname, `${hostname}\n`, { mode: 0o644 });
  writeFileSync(paths.hosts, hostsFile(hostname, ips), { mode: 0o644 });
  writeFileSync(paths.resolvConf, resolv, { mode: 0o644 });
  return paths;
}

/** As the kubelet writes it for pods: localhost lines, then the pod's IPs with its name. */
export function hostsFile(hostname: string, ips: string[]): string {
  const lines = [
    '# Kubernetes-managed hosts file (written by berth).',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    ...ips.map((ip) => `${ip}\t${hostname}`),
  ];
  return lines.join('\n') + '\n';
}

export function resolvConf(dns: DnsSettings): string {
  const lines: string[] = [];
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(' ')}`);
  for (const server of dns.servers) lines.push(`nameserver ${server}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return lines.join('\n') + '\n';
}
