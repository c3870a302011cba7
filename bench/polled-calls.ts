// bench/polled-calls: the calls the kubelet makes every second per pod (status and list
// calls, Version, and the stats and metrics calls of the kubelet's /stats/summary),
// against berthd and containerd (1.6, and 2.x when built) at once, each with one running
// pod and container. A call a runtime does not implement (UNIMPLEMENTED), or that
// containerd fails (2.x's ListPodSandboxMetrics of a pod without a cgroup parent), shows as n/a. Calls are interleaved (round robin, the rounds
// going through every order of the runtimes, so each follows each other equally often:
// see roundOrder), so a machine shared with other work slows all alike; medians in ms
// and berth/containerd ratios. Never fails on time. `--by-previous`: the polled calls'
// median by the runtime called just before (what a fixed order would bias). `--block N`:
// each call made N times in a row to one runtime before the next takes its turn (1: the
// calls interleaved one by one). A call right after one to containerd reads slower,
// whichever runtime it goes to (--by-previous; the Go daemon's threads still on a core
// is a guess), and on a node only one runtime answers: in blocks each runtime's figure is
// its own, the block's first call aside.
//   node dist/bench/polled-calls.js [--rounds N] [--block N] [--baseline OTHER/dist/src/bin/berthd.js] [--no-containerd] [--cpu-by-call] [--by-previous]
import { RuntimeService, ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { GrpcCallError, openChannel, serviceClient } from '../src/server/grpc-client.js';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import { cpuMs, median, numberArg, percentile, requireRoot, roundOrder, Scope } from './harness.js';
import { startPodBenchTargets } from './targets.js';

async function main(): Promise<void> {
  requireRoot();
  const rounds = numberArg('--rounds', 300);
  const block = numberArg('--block', 1);
  const scope = new Scope();
  try {
    const { image, targets } = await startPodBenchTargets(scope);
    const opts = { timeoutMs: 120_000 };
    const clients = await Promise.all(
      targets.map(async (target) => {
        const channel = openChannel(target.endpoint);
        const runtime = serviceClient(RuntimeService, channel);
        const images = serviceClient(ImageService, channel);
        await images.pullImage({ image: { image } }, { timeoutMs: 300_000 });
        const podConfig = { metadata: { name: 'polled', namespace: 'bench', uid: 'polled-uid', attempt: 0 }, hostname: 'polled', logDirectory: '/tmp/berth-bench-logs' };
        const pod = await runtime.runPodSandbox({ config: podConfig }, opts);
        const config = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: 'sleeper.log' };
        const ctr = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig: podConfig }, opts);
        await runtime.startContainer({ containerId: ctr.containerId }, opts);
        return { target, channel, runtime, images, pod: pod.podSandboxId, ctr: ctr.containerId };
      }),
    );
    type Client = (typeof clients)[number];
    const calls: [string, (c: Client) => Promise<unknown>][] = [
      ['Version', (c) => c.runtime.version({}, opts)],
      ['PodSandboxStatus', (c) => c.runtime.podSandboxStatus({ podSandboxId: c.pod }, opts)],
      ['ContainerStatus', (c) => c.runtime.containerStatus({ containerId: c.ctr }, opts)],
      ['ListPodSandbox', (c) => c.runtime.listPodSandbox({}, opts)],
      ['ListContainers', (c) => c.runtime.listContainers({}, opts)],
      ['ContainerStats', (c) => c.runtime.containerStats({ containerId: c.ctr }, opts)],
      ['ListContainerStats', (c) => c.runtime.listContainerStats({}, opts)],
      ['PodSandboxStats', (c) => c.runtime.podSandboxStats({ podSandboxId: c.pod }, opts)],
      ['ListPodSandboxStats', (c) => c.runtime.listPodSandboxStats({}, opts)],
      ['ListMetricDescriptors', (c) => c.runtime.listMetricDescriptors({}, opts)],
      ['ListPodSandboxMetrics', (c) => c.runtime.listPodSandboxMetrics({}, opts)],
      ['ImageStatus', (c) => c.images.imageStatus({ image: { image } }, opts)],
      ['ListImages', (c) => c.images.listImages({}, opts)],
    ];
    const times = new Map<string, number[]>();
    // Calls a runtime does not implement (containerd 1.6 has no metrics calls) or that fail on containerd: skipped.
    const unimplemented = new Set<string>();
    const attempt = async (name: string, call: (c: Client) => Promise<unknown>, client: Client): Promise<boolean> => {
      const key = `${name}\t${client.target.name}`;
      if (unimplemented.has(key)) return false;
      try {
        await call(client);
        return true;
      } catch (err) {
        // containerd 2 refuses ListPodSandboxMetrics for a pod without a cgroup parent (as here, no kubelet).
        if (err instanceof GrpcCallError && (err.code === GrpcStatus.UNIMPLEMENTED || client.target.name.startsWith('containerd'))) {
          unimplemented.add(key);
          return false;
        }
        throw err;
      }
    };
    // The kubelet's every-second calls, by runtime and the runtime called before (--by-previous).
    const polled = new Set(['Version', 'PodSandboxStatus', 'ContainerStatus', 'ListPodSandbox', 'ListContainers', 'ImageStatus', 'ListImages']);
    const byPrevious = new Map<string, number[]>();
    let previous = '';
    const cpuBefore = new Map(targets.map((t) => [t.name, cpuMs(t.pid)]));
    for (let round = 0; round < rounds; round++) {
      const order = roundOrder(round, clients.length);
      for (const [name, call] of calls) {
        for (let i = 0; i < order.length * block; i++) {
          const client = clients[order[Math.floor(i / block)]!]!;
          const started = process.hrtime.bigint();
          if (!(await attempt(name, call, client))) continue;
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          const key = `${name}\t${client.target.name}`;
          if (!times.has(key)) times.set(key, []);
          times.get(key)!.push(ms);
          if (polled.has(name) && previous) {
            const pair = `${client.target.name}\t${previous}`;
            if (!byPrevious.has(pair)) byPrevious.set(pair, []);
            byPrevious.get(pair)!.push(ms);
          }
          previous = client.target.name;
        }
      }
    }
    const cpu = new Map(targets.map((t) => [t.name, cpuMs(t.pid) - cpuBefore.get(t.name)!]));
    const memory = new Map<string, number>();
    for (const t of targets) memory.set(t.name, await t.memoryKb());
    // Each call alone, 300 times in a row per runtime: the daemon's CPU time per call of
    // that kind (the daemon's background work, if any, counted in).
    const cpuByCall = new Map<string, number>();
    if (process.argv.includes('--cpu-by-call')) {
      for (const [name, call] of calls) {
        for (const client of clients) {
          if (unimplemented.has(`${name}\t${client.target.name}`)) continue;
          const before = cpuMs(client.target.pid);
          for (let i = 0; i < 300; i++) await call(client);
          cpuByCall.set(`${name}\t${client.target.name}`, ((cpuMs(client.target.pid) - before) / 300) * 1000);
        }
      }
    }
    for (const c of clients) c.channel.close();
    const names = clients.map((c) => c.target.name);
    const containerd = names.filter((n) => n.startsWith('containerd'));
    process.stdout.write(`\n${rounds} rounds, interleaved${block > 1 ? ` in blocks of ${block} calls` : ''}; median ms (p95 in brackets); ratios berth/<runtime> of the medians\n`);
    process.stdout.write(`${'call'.padEnd(18)}${names.map((n) => n.padStart(20)).join('')}${containerd.map((n) => `berth/${n}`.padStart(22)).join('')}\n`);
    for (const [name] of calls) {
      const has = (n: string) => times.has(`${name}\t${n}`);
      const med = (n: string) => median(times.get(`${name}\t${n}`)!);
      const p95 = (n: string) => percentile(times.get(`${name}\t${n}`)!, 95);
      const cells = names.map((n) => (has(n) ? `${med(n).toFixed(2)} (${p95(n).toFixed(2)})` : 'n/a').padStart(20)).join('');
      const ratios = containerd.map((n) => (has('berth') && has(n) ? (med('berth') / med(n)).toFixed(2) : 'n/a').padStart(22)).join('');
      process.stdout.write(`${name.padEnd(22)}${cells}${ratios}\n`);
    }
    process.stdout.write(`${'RSS MB (1 pod)'.padEnd(18)}${names.map((n) => (memory.get(n)! / 1024).toFixed(1).padStart(20)).join('')}${containerd.map((n) => (memory.get('berth')! / memory.get(n)!).toFixed(2).padStart(22)).join('')}\n`);
    if (cpuByCall.size > 0) {
      process.stdout.write(`\ndaemon CPU µs per call, each call 300 times in a row\n`);
      for (const [name] of calls) {
        const per = (n: string) => cpuByCall.get(`${name}\t${n}`);
        const cell = (v: number | undefined, digits: number) => (v === undefined ? 'n/a' : v.toFixed(digits));
        process.stdout.write(`${name.padEnd(22)}${names.map((n) => cell(per(n), 0).padStart(20)).join('')}${containerd.map((n) => cell(per('berth') !== undefined && per(n) !== undefined ? per('berth')! / per(n)! : undefined, 2).padStart(22)).join('')}\n`);
      }
    }
    // The daemon's own CPU time per call (user + system, its threads included; not its
    // helpers): steadier than latency on a shared machine. Over the calls each one answered
    // (ListPodSandboxMetrics costs far more than the rest: compare the per-call lines).
    if (process.argv.includes('--by-previous')) {
      process.stdout.write(`\nthe polled calls (${[...polled].join(', ')}) by the runtime called before: median ms (calls)\n`);
      process.stdout.write(`${'runtime \\ before'.padEnd(22)}${names.map((n) => n.padStart(20)).join('')}\n`);
      for (const n of names) {
        const cell = (p: string) => {
          const list = byPrevious.get(`${n}\t${p}`);
          return (list ? `${median(list).toFixed(3)} (${list.length})` : 'n/a').padStart(20);
        };
        process.stdout.write(`${n.padEnd(22)}${names.map(cell).join('')}\n`);
      }
    }
    const made = (n: string) => calls.reduce((sum, [name]) => sum + (times.get(`${name}\t${n}`)?.length ?? 0), 0);
    const perCall = (n: string) => (cpu.get(n)! / made(n)) * 1000;
    process.stdout.write(`${'CPU µs/call'.padEnd(18)}${names.map((n) => perCall(n).toFixed(0).padStart(20)).join('')}${containerd.map((n) => (perCall('berth') / perCall(n)).toFixed(2).padStart(22)).join('')}\n`);
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
