// The runtimes a bench compares, started the same way on the same runc, CNI network and
// local registry: this build's berthd, optionally another build's (--baseline
// DIR/dist/src/bin/berthd.js, for A/B runs of a change), Debian's containerd 1.6 and,
// when scripts/build-containerd2.sh has built it, containerd 2.x.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { removeAllPods, startBerthd } from '../test/helpers/berthd.js';
import { containerdVersion, pushPauseImage, registryCriToml, startContainerd } from '../test/helpers/containerd.js';
import type { TestRegistry } from '../test/helpers/registry.js';
import { startPodNetwork } from '../test/helpers/pod-network.js';
import { initOfPinIn, parentOf, rssOf, startBusyboxRegistry, stringArg, type Scope } from './harness.js';
import type { TestBerthd } from '../test/helpers/berthd.js';
import type { TestContainerd } from '../test/helpers/containerd.js';

function berthMemory(berthd: TestBerthd): Promise<number> {
  const pid = berthd.process.pid;
  return rssOf(async (cmd, p) => p === pid || (cmd.startsWith('/usr/bin/conmon') && cmd.includes(berthd.dir)) || (cmd.startsWith('/usr/bin/catatonit') && (await initOfPinIn(p, join(berthd.dir, 'state', 'ns')))));
}

async function containerdMemory(containerd: TestContainerd): Promise<number> {
  const pid = containerd.process.pid;
  const isShim = (cmd: string) => cmd.includes('containerd-shim') && cmd.includes(containerd.socket);
  // Its shims first, then the pause containers they parent (other containerds' pods may be up too).
  const shims = new Set<number>();
  await rssOf((cmd, p) => {
    if (isShim(cmd)) shims.add(p);
    return false;
  });
  return rssOf(async (cmd, p) => p === pid || isShim(cmd) || (cmd.startsWith('/catatonit -P') && shims.has(await parentOf(p))));
}

export interface Target {
  name: string;
  endpoint: string;
  /** The daemon's pid (its helpers are found from it). */
  pid: number;
  kind: 'berth' | 'containerd';
  /**
   * Resident memory (kB) of the daemon and its per-pod and per-container processes:
   * conmon and the pods' catatonit for berth, shims and pause containers for containerd
   * (the pause containers its own shims parent).
   */
  memoryKb(): Promise<number>;
}

/** containerd 2.x's daemon, when built (BERTH_TOOLS_CACHE as in scripts/build-containerd2.sh). */
export function containerd2Binary(): string | undefined {
  const explicit = stringArg('--containerd2') ?? process.env.BENCH_CONTAINERD2;
  if (explicit) return explicit;
  const cache = process.env.BERTH_TOOLS_CACHE ?? '/var/cache/berth-test-tools';
  const path = join(cache, `containerd-${process.env.CONTAINERD2_VERSION ?? 'v2.4.2'}`, 'containerd');
  return existsSync(path) ? path : undefined;
}

export interface TargetOptions {
  /** The pod network's CNI config dir; none: each daemon gets an empty one of its own. */
  cniConfDir?: string;
  /** A pod network (and /24) of its own for each runtime, in place of cniConfDir (all holding their pods at once). */
  networkEach?: boolean;
  registry: TestRegistry;
  /** Leave containerd out (--no-containerd). */
  berthOnly?: boolean;
}

/** What a bench of running pods needs on every runtime: the busybox registry, a pod network, the targets. */
export async function startPodBenchTargets(scope: Scope, options: { networkEach?: boolean } = {}): Promise<{ image: string; targets: Target[] }> {
  const { registry, image } = await startBusyboxRegistry(scope);
  const cniConfDir = options.networkEach ? undefined : (await startPodNetwork(scope)).confDir;
  return { image, targets: await startTargets(scope, { cniConfDir, registry, networkEach: options.networkEach }) };
}

export async function startTargets(scope: Scope, options: TargetOptions): Promise<Target[]> {
  const targets: Target[] = [];
  const net = async () => (options.networkEach ? (await startPodNetwork(scope)).confDir : options.cniConfDir);
  const berthd = await startBerthd(scope, { cniConfDir: await net(), logLevel: 'warn' });
  targets.push({ name: 'berth', endpoint: berthd.endpoint, pid: berthd.process.pid!, kind: 'berth', memoryKb: () => berthMemory(berthd) });
  const baseline = stringArg('--baseline');
  if (baseline) {
    const base = await startBerthd(scope, { cniConfDir: await net(), logLevel: 'warn', binary: baseline });
    targets.push({ name: 'berth-base', endpoint: base.endpoint, pid: base.process.pid!, kind: 'berth', memoryKb: () => berthMemory(base) });
  }
  if (options.berthOnly || process.argv.includes('--no-containerd')) return targets;
  const criToml = registryCriToml(options.registry, await pushPauseImage(options.registry));
  const containerd = await startContainerd(scope, { cniConfDir: await net(), criToml });
  // Pods first, while containerd still runs: its shims and pod network namespaces would
  // outlive it otherwise (the scope closes in reverse order).
  scope.after(() => removeAllPods(containerd.endpoint).catch(() => undefined));
  targets.push({
    name: `containerd ${(await containerdVersion()).replace(/~.*/, '')}`,
    endpoint: containerd.endpoint,
    pid: containerd.process.pid!,
    kind: 'containerd',
    memoryKb: () => containerdMemory(containerd),
  });
  const cd2 = containerd2Binary();
  if (cd2) {
    const containerd2 = await startContainerd(scope, { cniConfDir: await net(), criToml, binary: cd2 });
    scope.after(() => removeAllPods(containerd2.endpoint).catch(() => undefined));
    targets.push({ name: 'containerd 2', endpoint: containerd2.endpoint, pid: containerd2.process.pid!, kind: 'containerd', memoryKb: () => containerdMemory(containerd2) });
  } else {
    process.stdout.write('containerd 2.x left out: not built (bash scripts/build-containerd2.sh builds it)\n');
  }
  return targets;
}
