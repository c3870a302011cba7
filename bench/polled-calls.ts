// bench/polled-calls: the calls the kubelet makes every second per pod (status and list
// calls, Version), against berthd and containerd (1.6, and 2.x when built) at once, each
// with one running pod and container. Calls are interleaved (round robin, the order of
// the runtimes turned each round), so a machine shared with other work slows all alike;
// medians in ms and berth/containerd ratios. Never fails on time.
//   node dist/bench/polled-calls.js [--rounds N] [--baseline OTHER/dist/src/bin/berthd.js] [--no-containerd] [--cpu-by-call]
import { RuntimeService, ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { cpuMs, median, numberArg, percentile, requireRoot, Scope } from './harness.js';
import { startPodBenchTargets } from './targets.js';

async function main(): Promise<void> {
  requireRoot();
  const rounds = numberArg('--rounds', 300);
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
      ['ImageStatus', (c) => c.images.imageStatus({ image: { image } }, opts)],
      ['ListImages', (c) => c.images.listImages({}, opts)],
    ];
    const times = new Map<string, number[]>();
    const cpuBefore = new Map(targets.map((t) => [t.name, cpuMs(t.pid)]));
    for (let round = 0; round < rounds; round++) {
      for (const [name, call] of calls) {
        for (let k = 0; k < clients.length; k++) {
          const client = clients[(round + k) % clients.length]!;
          const started = process.hrtime.bigint();
          await call(client);
          const key = `${name}\t${client.target.name}`;
          const list = times.get(key) ?? [];
          list.push(Number(process.hrtime.bigint() - started) / 1e6);
          times.set(key, list);
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
          const before = cpuMs(client.target.pid);
          for (let i = 0; i < 300; i++) await call(client);
          cpuByCall.set(`${name}\t${client.target.name}`, ((cpuMs(client.target.pid) - before) / 300) * 1000);
        }
      }
    }
    for (const c of clients) c.channel.close();
    const names = clients.map((c) => c.target.name);
    const containerd = names.filter((n) => n.startsWith('containerd'));
    process.stdout.write(`\n${rounds} rounds, interleaved; median ms (p95 in brackets); ratios berth/<runtime> of the medians\n`);
    process.stdout.write(`${'call'.padEnd(18)}${names.map((n) => n.padStart(20)).join('')}${containerd.map((n) => `berth/${n}`.padStart(22)).join('')}\n`);
    for (const [name] of calls) {
      const med = (n: string) => median(times.get(`${name}\t${n}`)!);
      const p95 = (n: string) => percentile(times.get(`${name}\t${n}`)!, 95);
      const cells = names.map((n) => `${med(n).toFixed(2)} (${p95(n).toFixed(2)})`.padStart(20)).join('');
      const ratios = containerd.map((n) => (med('berth') / med(n)).toFixed(2).padStart(22)).join('');
      process.stdout.write(`${name.padEnd(18)}${cells}${ratios}\n`);
    }
    process.stdout.write(`${'RSS MB (1 pod)'.padEnd(18)}${names.map((n) => (memory.get(n)! / 1024).toFixed(1).padStart(20)).join('')}${containerd.map((n) => (memory.get('berth')! / memory.get(n)!).toFixed(2).padStart(22)).join('')}\n`);
    if (cpuByCall.size > 0) {
      process.stdout.write(`\ndaemon CPU µs per call, each call 300 times in a row\n`);
      for (const [name] of calls) {
        const per = (n: string) => cpuByCall.get(`${name}\t${n}`)!;
        process.stdout.write(`${name.padEnd(18)}${names.map((n) => per(n).toFixed(0).padStart(20)).join('')}${containerd.map((n) => (per('berth') / per(n)).toFixed(2).padStart(22)).join('')}\n`);
      }
    }
    // The daemon's own CPU time per call (user + system, its threads included; not its
    // helpers): steadier than latency on a shared machine.
    const perCall = (n: string) => (cpu.get(n)! / (rounds * calls.length)) * 1000;
    process.stdout.write(`${'CPU µs/call'.padEnd(18)}${names.map((n) => perCall(n).toFixed(0).padStart(20)).join('')}${containerd.map((n) => (perCall('berth') / perCall(n)).toFixed(2).padStart(22)).join('')}\n`);
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
