// What a kubelet e2e run needs on the host besides the runtime: a cgroupRoot of its own
// in every cgroup v1 hierarchy (and its removal), what is left below it (processes, pod
// cgroups), mounts below given dirs, and summaries of berthd's and the kubelet's logs
// (CRI calls that failed; the kubelet's W/E lines). Used by test/e2e/kubelet.ts and
// test/e2e/cluster.ts.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const CGROUP_ROOT = '/sys/fs/cgroup';

async function hierarchies(): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(CGROUP_ROOT)) {
    const dir = join(CGROUP_ROOT, name);
    if ((await stat(dir)).isDirectory() && existsSync(join(dir, 'cgroup.procs'))) out.push(dir);
  }
  return out;
}

/** Makes the kubelet's cgroupRoot in every hierarchy (cpuset gets its parent's cpus and mems). */
export async function makeCgroupRoot(name: string): Promise<void> {
  for (const h of await hierarchies()) {
    const dir = join(h, name);
    await mkdir(dir, { recursive: true });
    if (h.endsWith('/cpuset')) {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) await writeFile(join(dir, f), (await readFile(join(h, f), 'utf8')).trim());
    }
  }
}

/** Every cgroup dir below name (all hierarchies), deepest first. */
export async function cgroupsBelow(name: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
    out.push(dir);
  };
  for (const h of await hierarchies()) await walk(join(h, name));
  return out;
}

/** "PID cmdline" of every process in a cgroup below name. */
export async function processesBelow(name: string): Promise<string[]> {
  const pids = new Set<string>();
  for (const dir of await cgroupsBelow(name)) {
    for (const pid of (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean)) pids.add(pid);
  }
  const out: string[] = [];
  for (const pid of pids) out.push(`${pid} ${(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '?')).replace(/\0/g, ' ').trim()}`);
  return out;
}

/** Kills what is left below name and removes its cgroups (every hierarchy). */
export async function removeCgroups(name: string): Promise<void> {
  for (const dir of await cgroupsBelow(name)) {
    for (const pid of (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  for (let i = 0; i < 20; i++) {
    let left = 0;
    for (const dir of await cgroupsBelow(name)) await rmdir(dir).catch(() => left++);
    if (left === 0) return;
    await sleep(250);
  }
  process.stderr.write(`cgroups left below ${name}: ${(await cgroupsBelow(name)).join(' ')}\n`);
}

/** Mount points strictly below any of dirs (from this process's mount table). */
export async function mountsUnder(dirs: string[]): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => dirs.some((d) => p.startsWith(`${d}/`)));
}

/**
 * berthd's rpc log lines (log_level debug) whose code is not OK, grouped, after one line
 * counting every call by method.
 */
export function failedRpcs(berthdLogs: string): string[] {
  const counts = new Map<string, number>();
  const calls = new Map<string, number>();
  for (const line of berthdLogs.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { msg?: string; rpc?: string; code?: string; error?: string };
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (entry.msg !== 'rpc' || !entry.rpc) continue;
    calls.set(entry.rpc, (calls.get(entry.rpc) ?? 0) + 1);
    if (entry.code === 'OK') continue;
    const key = `${entry.rpc} ${entry.code}: ${(entry.error ?? '').replace(/[0-9a-f]{64}/g, 'ID').replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, 'UID').slice(0, 200)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [`(calls: ${[...calls].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')})`, ...[...counts].map(([k, n]) => `${n}x ${k}`)];
}

/** A klog program's W and E lines, deduplicated by source line, with a count. */
export function klogWarnings(text: string): string[] {
  const counts = new Map<string, { n: number; line: string }>();
  for (const line of text.split('\n')) {
    const m = /^([WE])\d{4} [\d:.]+\s+\d+ ([\w.-]+:\d+)\] (.*)$/.exec(line);
    if (!m) continue;
    const key = `${m[1]} ${m[2]}`;
    const seen = counts.get(key);
    if (seen) seen.n++;
    else counts.set(key, { n: 1, line: `${m[1]} ${m[2]} ${m[3]!.replace(/[0-9a-f]{64}/g, 'ID').slice(0, 300)}` });
  }
  return [...counts.values()].map((v) => `${v.n}x ${v.line}`);
}

/** Polls fn until it gives a value (not undefined or false); the last error is named at the timeout. */
export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>, everyMs = 1000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

/** Where a test's kubelet keeps its files and which runtime it talks to. */
export interface KubeletPlaces {
  /** The kubelet's own temporary dir: resolv.conf and the volume-plugin dir go here. */
  dir: string;
  /** The cgroup made by makeCgroupRoot for this kubelet. */
  cgroupRoot: string;
  /** The CRI endpoint (runtime and image service alike). */
  endpoint: string;
  podLogsDir: string;
}

/**
 * The KubeletConfiguration both e2e kubelets share: cgroupfs below their own cgroupRoot,
 * a resolv.conf of their own that points nowhere, no eviction, no image GC, no swap check,
 * and nothing changed on the host's kernel settings or iptables. Callers add the
 * addresses, ports, authentication and what their scenario needs.
 */
export async function baseKubeletConfig(places: KubeletPlaces): Promise<Record<string, unknown>> {
  const resolvConf = join(places.dir, 'resolv.conf');
  await writeFile(resolvConf, 'nameserver 192.0.2.53\nsearch berth-e2e.invalid\n');
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    syncFrequency: '10s',
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${places.cgroupRoot}`,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: [],
    containerRuntimeEndpoint: places.endpoint,
    imageServiceEndpoint: places.endpoint,
    healthzBindAddress: '127.0.0.1',
    resolvConf,
    maxPods: 20,
    evictionHard: {},
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    failSwapOn: false,
    oomScoreAdj: 0,
    // The kubelet sets kernel.panic, panic_on_oops, vm.overcommit_memory and friends;
    // e2e-kubelet.sh saves and restores them.
    protectKernelDefaults: false,
    makeIPTablesUtilChains: false,
    podLogsDir: places.podLogsDir,
    volumePluginDir: join(places.dir, 'volume-plugins'),
    shutdownGracePeriod: '0s',
    serializeImagePulls: true,
  };
}

/** A line of an e2e driver's progress, stamped with the seconds since `started`. */
export function progressLog(started: number): (msg: string) => void {
  return (msg) => void process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
}

/** An e2e run stopped by hand (SIGINT, SIGTERM, SIGHUP) still cleans up its scope once, then exits 130. */
export function closeOnSignals(scope: { close(): Promise<unknown> }, log: (msg: string) => void): void {
  let closing = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (closing) return;
      closing = true;
      log(`${sig}: cleaning up`);
      void scope.close().finally(() => process.exit(130));
    });
  }
}
