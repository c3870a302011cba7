// bench/cri-calls: the CRI calls critest -benchmark times (the status calls verbose, as
// critest asks), against berthd alone, one at a time, with their medians: a quick loop
// for profiling. berthd inherits the environment, so NODE_OPTIONS="--require FILE" can
// load a preload into it (--cpu-prof itself is refused in NODE_OPTIONS; a preload can
// start the inspector's profiler instead).
//   node dist/bench/cri-calls.js [--iterations N] [--hot N]
// --hot N repeats the read-only calls N times on one running container. With
// BENCH_MARKS=FILE a line naming each call is appended to FILE as it begins (to line a
// trace of berthd's child processes up with the calls); BENCH_BERTHD_LOG=FILE keeps
// berthd's log.
import { appendFileSync } from 'node:fs';
import { RuntimeService, ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-service.js';
import { startBerthd } from '../test/helpers/berthd.js';
import { startPodNetwork } from '../test/helpers/pod-network.js';
import { median, numberArg, requireRoot, Scope, startBusyboxRegistry, stepTimer } from './harness.js';

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
    await images.pullImage({ image: { image } }, { timeoutMs: 300_000 });
    const { times, timed } = stepTimer(marks ? (name) => appendFileSync(marks, `${Date.now()} MARK ${name}\n`) : undefined);
    const opts = { timeoutMs: 120_000 };
    for (let i = 0; i < iterations; i++) {
      const podConfig = { metadata: { name: `calls-${i}`, namespace: 'bench', uid: `calls-${i}-uid`, attempt: 0 }, hostname: `calls-${i}`, logDirectory: '/tmp/berth-bench-logs' };
      const pod = await timed('RunPodSandbox', () => runtime.runPodSandbox({ config: podConfig }, opts));
      await timed('PodSandboxStatus', () => runtime.podSandboxStatus({ podSandboxId: pod.podSandboxId, verbose: true }, opts));
      const config = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: 'sleeper.log' };
      const ctr = await timed('CreateContainer', () => runtime.createContainer({ podSandboxId: pod.podSandboxId, config, sandboxConfig: podConfig }, opts));
      await timed('StartContainer', () => runtime.startContainer({ containerId: ctr.containerId }, opts));
      await timed('ContainerStatus', () => runtime.containerStatus({ containerId: ctr.containerId, verbose: true }, opts));
      await timed('ListContainers', () => runtime.listContainers({}, opts));
      await timed('ImageStatus', () => images.imageStatus({ image: { image } }, opts));
      await timed('ListImages', () => images.listImages({}, opts));
      await timed('StopContainer', () => runtime.stopContainer({ containerId: ctr.containerId, timeout: 0n }, opts));
      await timed('RemoveContainer', () => runtime.removeContainer({ containerId: ctr.containerId }, opts));
      await timed('StopPodSandbox', () => runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId }, opts));
      await timed('RemovePodSandbox', () => runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }, opts));
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
    const pair = (a: string, b: string) => median(times.get(a)!.map((v, i) => v + times.get(b)![i]!));
    process.stdout.write(`${'Create+Start'.padEnd(20)} ${pair('CreateContainer', 'StartContainer').toFixed(1).padStart(8)}\n`);
    process.stdout.write(`${'Stop+Remove'.padEnd(20)} ${pair('StopContainer', 'RemoveContainer').toFixed(1).padStart(8)}\n`);
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
