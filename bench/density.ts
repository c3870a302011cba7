// bench/density: 100 running pods (one busybox container each) on berthd, then on
// containerd 1.6 and, when built, containerd 2.x, one runtime at a time on the same
// runc, pod network and registry: how long the Nth pod takes to start (RunPodSandbox +
// CreateContainer + StartContainer) against the first, the total, the resident memory of
// each daemon with its per-pod processes, and the latency of the calls the kubelet polls
// with 1 and with N pods (interleaved per call; growth shows per-call work that grows
// with the number of pods; NaN: a call that runtime failed). Never fails on time.
//   node dist/bench/density.js [--pods N] [--polls N] [--no-containerd] [--baseline OTHER/dist/src/bin/berthd.js]
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeService, ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { median, numberArg, requireRoot, Scope } from './harness.js';
import { startPodBenchTargets } from './targets.js';

const SETTLE_MS = 10_000;
const UID_LABEL = 'io.kubernetes.pod.uid';
const uidOf = (i: number) => `density-${i}-uid`;

interface Figures {
  startMs: number[];
  totalS: number;
  memoryKb: number;
  /** call → [median ms with 1 pod, median ms with N pods] */
  polls: Map<string, [number, number]>;
}

async function main(): Promise<void> {
  requireRoot();
  const pods = numberArg('--pods', 100);
  const polls = numberArg('--polls', 100);
  const scope = new Scope();
  try {
    const { image, targets } = await startPodBenchTargets(scope);
    const opts = { timeoutMs: 120_000 };
    const results = new Map<string, Figures>();
    for (const target of targets) {
      const channel = openChannel(target.endpoint);
      const runtime = serviceClient(RuntimeService, channel);
      const images = serviceClient(ImageService, channel);
      await images.pullImage({ image: { image } }, { timeoutMs: 300_000 });
      const figures: Figures = { startMs: [], totalS: 0, memoryKb: 0, polls: new Map() };
      const made: { pod: string; ctr: string }[] = [];
      const pollAll = async (index: 0 | 1) => {
        const { pod, ctr } = made[0]!;
        const calls: [string, () => Promise<unknown>][] = [
          ['PodSandboxStatus', () => runtime.podSandboxStatus({ podSandboxId: pod }, opts)],
          ['ContainerStatus', () => runtime.containerStatus({ containerId: ctr }, opts)],
          ['ListPodSandbox', () => runtime.listPodSandbox({}, opts)],
          ['ListContainers', () => runtime.listContainers({}, opts)],
          // What the kubelet asks for each pod it syncs: its sandboxes and containers by its uid label.
          ['ListPodSandbox of a pod (uid label)', () => runtime.listPodSandbox({ filter: { labelSelector: { [UID_LABEL]: uidOf(0) } } }, opts)],
          ['ListContainers of a pod (uid label)', () => runtime.listContainers({ filter: { labelSelector: { [UID_LABEL]: uidOf(0) } } }, opts)],
          ['ContainerStats', () => runtime.containerStats({ containerId: ctr }, opts)],
          ['ListContainerStats', () => runtime.listContainerStats({}, opts)],
          ['ListPodSandboxStats', () => runtime.listPodSandboxStats({}, opts)],
        ];
        const times = new Map<string, number[]>();
        for (let i = 0; i < polls; i++) {
          for (const [name, call] of calls) {
            const t = process.hrtime.bigint();
            // A call a runtime fails (containerd's pod stats of a pod without a cgroup parent) is left out.
            if (!(await call().then(() => true, () => false))) continue;
            times.set(name, [...(times.get(name) ?? []), Number(process.hrtime.bigint() - t) / 1e6]);
          }
        }
        for (const [name, list] of times) {
          const pair = figures.polls.get(name) ?? [0, 0];
          pair[index] = median(list);
          figures.polls.set(name, pair);
        }
      };
      const started = process.hrtime.bigint();
      for (let i = 0; i < pods; i++) {
        // Labelled as the kubelet labels a pod and its containers.
        const labels = { [UID_LABEL]: uidOf(i), 'io.kubernetes.pod.name': `density-${i}`, 'io.kubernetes.pod.namespace': 'bench' };
        const podConfig = { metadata: { name: `density-${i}`, namespace: 'bench', uid: uidOf(i), attempt: 0 }, hostname: `density-${i}`, logDirectory: '/tmp/berth-bench-logs', labels };
        const t = process.hrtime.bigint();
        const pod = await runtime.runPodSandbox({ config: podConfig }, opts);
        const config = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: `sleeper-${i}.log`, labels: { ...labels, 'io.kubernetes.container.name': 'sleeper' } };
        const ctr = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig: podConfig }, opts);
        await runtime.startContainer({ containerId: ctr.containerId }, opts);
        figures.startMs.push(Number(process.hrtime.bigint() - t) / 1e6);
        made.push({ pod: pod.podSandboxId, ctr: ctr.containerId });
        if (i === 0) await pollAll(0);
      }
      figures.totalS = Number(process.hrtime.bigint() - started) / 1e9;
      await pollAll(1);
      await sleep(SETTLE_MS);
      figures.memoryKb = await target.memoryKb();
      for (const { pod } of made) {
        await runtime.stopPodSandbox({ podSandboxId: pod }, opts);
        await runtime.removePodSandbox({ podSandboxId: pod }, opts);
      }
      channel.close();
      results.set(target.name, figures);
      process.stdout.write(`${target.name}: ${pods} pods in ${figures.totalS.toFixed(1)} s\n`);
    }
    const names = [...results.keys()];
    const containerds = names.filter((n) => n.startsWith('containerd'));
    const berth = results.get('berth')!;
    const cell = (v: string) => v.padStart(18);
    const ratio = (f: (x: Figures) => number) => containerds.map((n) => cell((f(berth) / f(results.get(n)!)).toFixed(2))).join('');
    process.stdout.write(`\n${pods} pods, one after another; ms unless named; ratios berth/<runtime>\n`);
    process.stdout.write(`${''.padEnd(48)}${names.map(cell).join('')}${containerds.map((n) => cell(`berth/${n}`)).join('')}\n`);
    const row = (label: string, f: (x: Figures) => number, digits = 1) =>
      process.stdout.write(`${label.padEnd(48)}${names.map((n) => cell(f(results.get(n)!).toFixed(digits))).join('')}${ratio(f)}\n`);
    row('start of pod 1', (x) => x.startMs[0]!);
    row(`start of pod ${pods}`, (x) => x.startMs.at(-1)!);
    row(`median start, pods 1-${pods}`, (x) => median(x.startMs));
    row(`all ${pods} pods (s)`, (x) => x.totalS, 2);
    row(`resident memory, ${pods} pods (MB)`, (x) => x.memoryKb / 1024);
    for (const call of berth.polls.keys()) {
      row(`${call}, 1 pod`, (x) => x.polls.get(call)?.[0] ?? Number.NaN, 2);
      row(`${call}, ${pods} pods`, (x) => x.polls.get(call)?.[1] ?? Number.NaN, 2);
    }
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
