// bench/cri-calls: the CRI calls critest -benchmark times (the status calls verbose, as
// critest asks), against berthd alone, one at a time, with their medians: a quick loop
// for profiling. berthd inherits the environment, so NODE_OPTIONS="--require FILE" can
// load a preload into it (--cpu-prof itself is refused in NODE_OPTIONS; a preload can
// start the inspector's profiler instead).
//   node dist/bench/cri-calls.js [--iterations N] [--hot N] [--baseline OTHER/dist/src/bin/berthd.js] [--raw]
// --baseline runs another build's berthd beside this one ("base " figures), --raw the
// host tools alone (bench/raw-host.ts); the turns rotate each iteration, one at a time.
// --hot N repeats the read-only calls N times on one running container. With
// BENCH_MARKS=FILE a line naming each call is appended to FILE as it begins (to line a
// trace of berthd's child processes up with the calls); BENCH_BERTHD_LOG=FILE keeps
// berthd's log. Each berthd's own CPU time per iteration (all its threads), its spawning
// helper's and that of the children the helper reaped are read from /proc/PID/stat
// around each iteration (10 ms ticks).
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { RuntimeService, ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd } from '../test/helpers/berthd.js';
import { startPodNetwork } from '../test/helpers/pod-network.js';
import { cpuMs, median, numberArg, requireRoot, Scope, startBusyboxRegistry, statFields, stepTimer, stringArg } from './harness.js';
import { RAW_DOWN, RAW_UP, RawHost } from './raw-host.js';

/**
 * CPU ms so far of berthd's live spawning helper (its child named berth-spawn-helper), 0
 * if none, and of the children it has reaped (the host tools, CNI plugins and their own
 * children, the helper's no-exec operations; not what outlives them: conmon's daemon,
 * runc create under it, catatonit).
 */
function helperCpuMs(berthdPid: number): { own: number; children: number } {
  const total = { own: 0, children: 0 };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (Number(fields[1]) !== berthdPid) continue;
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith('berth-spawn-helper')) continue;
      total.own += (Number(fields[11]) + Number(fields[12])) * 10;
      total.children += (Number(fields[13]) + Number(fields[14])) * 10;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Runs one iteration and adds berthd's and its helper's CPU ms to cpu[name]. */
async function measured(cpu: Map<string, { berthd: number[]; helper: number[]; children: number[] }>, name: string, pid: number, step: () => Promise<void>): Promise<void> {
  const before = cpuMs(pid);
  const helperBefore = helperCpuMs(pid);
  await step();
  const entry = cpu.get(name) ?? { berthd: [], helper: [], children: [] };
  entry.berthd.push(cpuMs(pid) - before);
  // A helper that exited during the iteration (10 s idle) would go negative: not counted.
  const helperAfter = helperCpuMs(pid);
  entry.helper.push(Math.max(0, helperAfter.own - helperBefore.own));
  entry.children.push(Math.max(0, helperAfter.children - helperBefore.children));
  cpu.set(name, entry);
}

async function main(): Promise<void> {
  requireRoot();
  const iterations = numberArg('--iterations', 20);
  const marks = process.env.BENCH_MARKS;
  const scope = new Scope();
  try {
    const { image } = await startBusyboxRegistry(scope);
    const net = await startPodNetwork(scope);
    const berthd = await startBerthd(scope, { cniConfDir: net.confDir, logLevel: 'warn' });
    const channel = openChannel(berthd.endpoint);
    const runtime = serviceClient(RuntimeService, channel);
    const images = serviceClient(ImageService, channel);
    const primary = { runtime, images };
    await images.pullImage({ image: { image } }, { timeoutMs: 300_000 });
    const { times, timed } = stepTimer(marks ? (name) => appendFileSync(marks, `${Date.now()} MARK ${name}\n`) : undefined);
    const opts = { timeoutMs: 120_000 };
    // One pod with one container through every call, each timed under prefix + its name.
    const lifecycle = async (prefix: string, runtime: typeof primary.runtime, images: typeof primary.images, i: number) => {
      const podConfig = { metadata: { name: `calls-${i}`, namespace: 'bench', uid: `calls-${i}-uid`, attempt: 0 }, hostname: `calls-${i}`, logDirectory: '/tmp/berth-bench-logs' };
      const pod = await timed(`${prefix}RunPodSandbox`, () => runtime.runPodSandbox({ config: podConfig }, opts));
      await timed(`${prefix}PodSandboxStatus`, () => runtime.podSandboxStatus({ podSandboxId: pod.podSandboxId, verbose: true }, opts));
      const config = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: 'sleeper.log' };
      const ctr = await timed(`${prefix}CreateContainer`, () => runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig: podConfig }, opts));
      await timed(`${prefix}StartContainer`, () => runtime.startContainer({ containerId: ctr.containerId }, opts));
      await timed(`${prefix}ContainerStatus`, () => runtime.containerStatus({ containerId: ctr.containerId, verbose: true }, opts));
      await timed(`${prefix}ListContainers`, () => runtime.listContainers({}, opts));
      await timed(`${prefix}ImageStatus`, () => images.imageStatus({ image: { image } }, opts));
      await timed(`${prefix}ListImages`, () => images.listImages({}, opts));
      await timed(`${prefix}StopContainer`, () => runtime.stopContainer({ containerId: ctr.containerId, timeout: 0n }, opts));
      await timed(`${prefix}RemoveContainer`, () => runtime.removeContainer({ containerId: ctr.containerId }, opts));
      await timed(`${prefix}StopPodSandbox`, () => runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId }, opts));
      await timed(`${prefix}RemovePodSandbox`, () => runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }, opts));
    };
    // --baseline: another build's berthd ("base " names); --raw: the host tools alone (raw-host.ts). Turns rotate.
    const cpu = new Map<string, { berthd: number[]; helper: number[]; children: number[] }>();
    const turns: Array<(i: number) => Promise<void>> = [(i) => measured(cpu, 'berth', berthd.process.pid!, () => lifecycle('', runtime, images, i))];
    const baselineBinary = stringArg('--baseline');
    if (baselineBinary) {
      const base = await startBerthd(scope, { cniConfDir: net.confDir, logLevel: 'warn', binary: baselineBinary });
      const baseChannel = openChannel(base.endpoint);
      scope.after(() => baseChannel.close());
      const baseRuntime = serviceClient(RuntimeService, baseChannel);
      const baseImages = serviceClient(ImageService, baseChannel);
      await baseImages.pullImage({ image: { image } }, { timeoutMs: 300_000 });
      turns.push((i) => measured(cpu, 'base', base.process.pid!, () => lifecycle('base ', baseRuntime, baseImages, i)));
    }
    const raw = process.argv.includes('--raw') ? await RawHost.create(scope, net.confDir) : undefined;
    if (raw) turns.push(() => raw.iteration(timed));
    for (let i = 0; i < iterations; i++) {
      for (let k = 0; k < turns.length; k++) await turns[(i + k) % turns.length]!(i);
    }
    // The read-only calls again, many times, on one running container (--hot N).
    const hot = numberArg('--hot', 0);
    if (hot > 0) {
      const podConfig = { metadata: { name: 'hot', namespace: 'bench', uid: 'hot-uid', attempt: 0 }, hostname: 'hot', logDirectory: '/tmp/berth-bench-logs' };
      const pod = await runtime.runPodSandbox({ config: podConfig }, opts);
      const config = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: 'sleeper.log' };
      const ctr = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig: podConfig }, opts);
      await runtime.startContainer({ containerId: ctr.containerId }, opts);
      for (let i = 0; i < hot; i++) {
        await timed('hot PodSandboxStatus', () => runtime.podSandboxStatus({ podSandboxId: pod.podSandboxId, verbose: true }, opts));
        await timed('hot ContainerStatus', () => runtime.containerStatus({ containerId: ctr.containerId, verbose: true }, opts));
        await timed('hot ListContainers', () => runtime.listContainers({}, opts));
        await timed('hot ImageStatus', () => images.imageStatus({ image: { image } }, opts));
        await timed('hot ListImages', () => images.listImages({}, opts));
        await timed('hot Version', () => runtime.version({}, opts));
      }
    }
    channel.close();
    if (process.env.BENCH_BERTHD_LOG) (await import('node:fs')).writeFileSync(process.env.BENCH_BERTHD_LOG, berthd.logs());
    process.stdout.write(`\n${iterations} iterations, berthd, runc; median ms\n`);
    for (const [name, list] of times) process.stdout.write(`${name.padEnd(20)} ${median(list).toFixed(1).padStart(8)}\n`);
    // Sums per iteration, then their median.
    const sum = (...names: string[]) => median(times.get(names[0]!)!.map((_, i) => names.reduce((s, n) => s + times.get(n)![i]!, 0)));
    const sums: Array<[string, string[]]> = [
      ['Create+Start', ['CreateContainer', 'StartContainer']],
      ['Stop+Remove', ['StopContainer', 'RemoveContainer']],
      ['Run+Create+Start', ['RunPodSandbox', 'CreateContainer', 'StartContainer']],
      ['pod Stop+Remove', ['StopPodSandbox', 'RemovePodSandbox']],
    ];
    for (const prefix of baselineBinary ? ['', 'base '] : ['']) {
      for (const [label, names] of sums) process.stdout.write(`${(prefix + label).padEnd(20)} ${sum(...names.map((n) => prefix + n)).toFixed(1).padStart(8)}\n`);
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    for (const [name, c] of cpu) {
      process.stdout.write(`${name} CPU ms per iteration (12 calls; /proc/PID/stat): berthd ${mean(c.berthd).toFixed(1)} (median ${median(c.berthd).toFixed(0)}), spawning helper ${mean(c.helper).toFixed(1)}, its reaped children ${mean(c.children).toFixed(1)}\n`);
    }
    process.stdout.write(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
    if (raw) {
      const up = sum(...RAW_UP);
      process.stdout.write(`${'raw up'.padEnd(20)} ${up.toFixed(1).padStart(8)}  (netns + CNI ADD, overlay mount, runc create + start)\n`);
      process.stdout.write(`${'raw down'.padEnd(20)} ${sum(...RAW_DOWN).toFixed(1).padStart(8)}\n`);
      process.stdout.write(`Run+Create+Start / raw up: ${(sum('RunPodSandbox', 'CreateContainer', 'StartContainer') / up).toFixed(2)}\n`);
    }
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
