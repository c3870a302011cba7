import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inPinnedNamespace } from '../src/linux/pid-namespace.js';
import { buildLayer, busyboxEntries, pushImage } from '../test/helpers/image-builder.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import type { Scope } from '../test/helpers/scope.js';

// What benchmarks share: a cleanup scope standing in for node:test's `t` (so the test
// helpers that start berthd, containerd and the registry can be reused), and figures.
export { Scope } from '../test/helpers/scope.js';

/** The value after a numeric flag (`--rounds 200`), or the fallback. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The value after a flag (`--runtimes berth`), if given. */
export function stringArg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** A local registry serving the benches' busybox image as `bench/busybox:1`. */
export async function startBusyboxRegistry(scope: Scope): Promise<{ registry: TestRegistry; image: string }> {
  const registry = await startRegistry(scope);
  await pushImage(registry, 'bench/busybox', '1', { layers: [buildLayer(busyboxEntries())] });
  return { registry, image: `${registry.host}/bench/busybox:1` };
}

/** Durations (ms) of named steps: `timed(name, step)` runs the step and adds its time under name. */
export function stepTimer(onStart?: (name: string) => void): { times: Map<string, number[]>; timed: <T>(name: string, step: () => Promise<T>) => Promise<T> } {
  const times = new Map<string, number[]>();
  const timed = async <T>(name: string, step: () => Promise<T>): Promise<T> => {
    onStart?.(name);
    const t = process.hrtime.bigint();
    const result = await step();
    const list = times.get(name) ?? [];
    list.push(Number(process.hrtime.bigint() - t) / 1e6);
    times.set(name, list);
    return result;
  };
  return { times, timed };
}

/**
 * The order in which n runtimes take their turn in a round: the rounds go through every
 * permutation of 0..n-1 in turn (n ≤ 6; a rotation beyond), so each runtime follows each
 * other equally often. It matters: a call right after one to containerd read ~0.05 ms
 * slower than one after berthd (measured, bench:polled --by-previous; why is not known:
 * perhaps the Go daemon still busy on one of the two cores after answering), and a fixed
 * rotation (0,1,2,3 turned each round) put the same runtime always after the same one:
 * the bench's first column (this build) after containerd 2.
 */
export function roundOrder(round: number, n: number): number[] {
  if (n > 6) return Array.from({ length: n }, (_, k) => (round + k) % n);
  let total = 1;
  for (let k = 2; k <= n; k++) total *= k;
  let rest = round % total;
  const left = Array.from({ length: n }, (_, k) => k);
  const order: number[] = [];
  for (let k = n; k > 0; k--) {
    total /= k;
    order.push(left.splice(Math.floor(rest / total), 1)[0]!);
    rest %= total;
  }
  return order;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    process.stderr.write('benchmarks start berthd, containerd and a registry: run them as root\n');
    process.exit(1);
  }
}

/** A process's user + system CPU time so far, in ms (/proc/PID/stat, clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const fields = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The fields of a /proc/PID/stat text after the command name (which may hold spaces and
 * parentheses): [0] is the state, [1] the parent pid, [11]/[12] user/system ticks,
 * [13]/[14] those of the reaped children.
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Resident memory (kB) of the processes whose command line matches. */
export async function rssOf(match: (cmdline: string, pid: number) => boolean | Promise<boolean>): Promise<number> {
  let total = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline || !(await match(cmdline.replace(/\0/g, ' '), Number(entry)))) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    total += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  return total;
}

/** A process's parent pid (0 when it is gone). */
export async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return Number(statFields(stat)[1] ?? 0);
}

/** True when the process is the init of a PID namespace pinned in dir (a berth pod's catatonit). */
export async function initOfPinIn(pid: number, dir: string): Promise<boolean> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.endsWith('-pid') && (await inPinnedNamespace(pid, join(dir, name)))) return true;
  }
  return false;
}
