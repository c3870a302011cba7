// bench/density: 100 running pods (one busybox container each) on berthd and on
// containerd 1.6 and, when built, containerd 2.x (and another berthd build with
// --baseline), on the same runc, pod network and registry: how long the Nth pod takes to
// start (RunPodSandbox + CreateContainer + StartContainer, one runtime at a time) against
// the first, the total of the starts, the resident memory of each daemon with its
// per-pod processes (every runtime holding its pods), and the latency of the calls the
// kubelet polls with 1 and with N pods on every runtime, interleaved call by call across
// the runtimes (growth shows per-call work that grows with the number of pods; NaN: a
// call that runtime failed). The lists' latency includes the bench client's decoding of
// the answer (protobuf-es, in this process), which grows with the answer: printed apart
// (the answer's size, and the client's decode time of it alone), so what grows on the
// daemon's side shows. Never fails on time.
//   node dist/bench/density.js [--pods N] [--polls N] [--no-containerd] [--baseline OTHER/dist/src/bin/berthd.js]
import { setTimeout as sleep } from 'node:timers/promises';
import { fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { RuntimeService, ImageService, ListContainersResponseSchema, ListPodSandboxResponseSchema } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { median, numberArg, requireRoot, roundOrder, Scope } from './harness.js';
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
  /** list call → [its answer's size in KB, the bench client's decode of it alone in ms], with N pods */
  decode: Map<string, [number, number]>;
}

/** The bench client's own time to decode this answer (median of 15 blocks of 20, after a warm-up), ms. */
function decodeMs<S extends DescMessage>(schema: S, answer: MessageShape<S>): [number, number] {
  const bytes = toBinary(schema, answer);
  for (let i = 0; i < 100; i++) fromBinary(schema, bytes);
  const blocks: number[] = [];
  for (let b = 0; b < 15; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) fromBinary(schema, bytes);
    blocks.push(Number(process.hrtime.bigint() - t) / 1e6 / 20);
  }
  return [bytes.length / 1024, median(blocks)];
}

async function main(): Promise<void> {
  requireRoot();
  const pods = numberArg('--pods', 100);
  const polls = numberArg('--polls', 100);
  const scope = new Scope();
  try {
    // Every runtime holds its pods at once: a /24 each.
    const { image, targets } = await startPodBenchTargets(scope, { networkEach: true });
    const opts = { timeoutMs: 120_000 };
    const runs = await Promise.all(
      targets.map(async (target) => {
        const channel = openChannel(target.endpoint);
        const runtime = serviceClient(RuntimeService, channel);
        await serviceClient(ImageService, channel).pullImage({ image: { image } }, { timeoutMs: 300_000 });
        const figures: Figures = { startMs: [], totalS: 0, memoryKb: 0, polls: new Map(), decode: new Map() };
        return { target, channel, runtime, figures, made: [] as { pod: string; ctr: string }[] };
      }),
    );
    type Run = (typeof runs)[number];
    const start = async (run: Run, i: number) => {
      const { runtime } = run;
      // Labelled as the kubelet labels a pod and its containers.
      const labels = { [UID_LABEL]: uidOf(i), 'io.kubernetes.pod.name': `density-${i}`, 'io.kubernetes.pod.namespace': 'bench' };
      const podConfig = { metadata: { name: `density-${i}`, namespace: 'bench', uid: uidOf(i), attempt: 0 }, hostname: `density-${i}`, logDirectory: '/tmp/berth-bench-logs', labels };
      const t = process.hrtime.bigint();
      const pod = await runtime.runPodSandbox({ config: podConfig }, opts);
      const config = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: `sleeper-${i}.log`, labels: { ...labels, 'io.kubernetes.container.name': 'sleeper' } };
      const ctr = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig: podConfig }, opts);
      await runtime.startContainer({ containerId: ctr.containerId }, opts);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      run.figures.startMs.push(ms);
      run.figures.totalS += ms / 1000;
      run.made.push({ pod: pod.podSandboxId, ctr: ctr.containerId });
    };
    // The polled calls on every runtime at once, interleaved call by call (the rounds going
    // through every order of the runtimes: roundOrder), so a machine shared with other work
    // slows all alike and none always follows the same other.
    const pollAll = async (index: 0 | 1) => {
      const calls: [string, (r: Run) => Promise<unknown>][] = [
        ['PodSandboxStatus', (r) => r.runtime.podSandboxStatus({ podSandboxId: r.made[0]!.pod }, opts)],
        ['ContainerStatus', (r) => r.runtime.containerStatus({ containerId: r.made[0]!.ctr }, opts)],
        ['ListPodSandbox', (r) => r.runtime.listPodSandbox({}, opts)],
        ['ListContainers', (r) => r.runtime.listContainers({}, opts)],
        // What the kubelet asks for each pod it syncs: its sandboxes and containers by its uid label.
        ['ListPodSandbox of a pod (uid label)', (r) => r.runtime.listPodSandbox({ filter: { labelSelector: { [UID_LABEL]: uidOf(0) } } }, opts)],
        ['ListContainers of a pod (uid label)', (r) => r.runtime.listContainers({ filter: { labelSelector: { [UID_LABEL]: uidOf(0) } } }, opts)],
        ['ContainerStats', (r) => r.runtime.containerStats({ containerId: r.made[0]!.ctr }, opts)],
        ['ListContainerStats', (r) => r.runtime.listContainerStats({}, opts)],
        ['ListPodSandboxStats', (r) => r.runtime.listPodSandboxStats({}, opts)],
      ];
      const times = new Map<Run, Map<string, number[]>>(runs.map((r) => [r, new Map()]));
      for (let i = 0; i < polls; i++) {
        for (const [name, call] of calls) {
          for (const k of roundOrder(i, runs.length)) {
            const run = runs[k]!;
            const t = process.hrtime.bigint();
            // A call a runtime fails (containerd's pod stats of a pod without a cgroup parent) is left out.
            if (!(await call(run).then(() => true, () => false))) continue;
            const mine = times.get(run)!;
            mine.set(name, [...(mine.get(name) ?? []), Number(process.hrtime.bigint() - t) / 1e6]);
          }
        }
      }
      for (const [run, byCall] of times) {
        for (const [name, list] of byCall) {
          const pair = run.figures.polls.get(name) ?? [0, 0];
          pair[index] = median(list);
          run.figures.polls.set(name, pair);
        }
      }
    };
    for (const run of runs) await start(run, 0);
    await pollAll(0);
    for (const run of runs) {
      for (let i = 1; i < pods; i++) await start(run, i);
      process.stdout.write(`${run.target.name}: ${pods} pods in ${run.figures.totalS.toFixed(1)} s\n`);
    }
    await pollAll(1);
    for (const run of runs) {
      run.figures.decode.set('ListPodSandbox', decodeMs(ListPodSandboxResponseSchema, await run.runtime.listPodSandbox({}, opts)));
      run.figures.decode.set('ListContainers', decodeMs(ListContainersResponseSchema, await run.runtime.listContainers({}, opts)));
    }
    await sleep(SETTLE_MS);
    for (const run of runs) run.figures.memoryKb = await run.target.memoryKb();
    const results = new Map<string, Figures>();
    for (const run of runs) {
      for (const { pod } of run.made) {
        await run.runtime.stopPodSandbox({ podSandboxId: pod }, opts);
        await run.runtime.removePodSandbox({ podSandboxId: pod }, opts);
      }
      run.channel.close();
      results.set(run.target.name, run.figures);
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
    for (const call of berth.decode.keys()) {
      row(`${call} answer, ${pods} pods (KB)`, (x) => x.decode.get(call)?.[0] ?? Number.NaN, 1);
      row(`  the bench client's decode of it alone`, (x) => x.decode.get(call)?.[1] ?? Number.NaN, 2);
    }
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
