// bench/lifecycle: pod and container lifecycle latency and daemon memory, berthd and
// containerd side by side in one run, on the same machine and OCI runtime (runc).
//   node dist/bench/lifecycle.js [--iterations N] [--pods N]
// Prints p50/p95 ms of RunPodSandbox, CreateContainer+StartContainer, and
// Stop+Remove (container and pod), then resident memory idle and with N running pods
// (the daemon plus its per-pod and per-container processes: conmon and the pod's
// catatonit for berth, shims and pause containers for containerd).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { RuntimeService, ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd } from '../test/helpers/berthd.js';
import { startContainerd } from '../test/helpers/containerd.js';
import { buildLayer, pushImage } from '../test/helpers/image-builder.js';
import { startPodNetwork } from '../test/helpers/pod-network.js';
import { initOfPinIn, numberArg, percentile, requireRoot, rssOf, Scope, startBusyboxRegistry } from './harness.js';

const SETTLE_MS = 10_000;

interface Figures {
  runPod: number[];
  createStart: number[];
  stopRemove: number[];
  idleKb: number;
  loadedKb: number;
}

async function measure(endpoint: string, image: string, iterations: number, pods: number, memory: () => Promise<number>): Promise<Figures> {
  const channel = openChannel(endpoint);
  const runtime = serviceClient(RuntimeService, channel);
  const images = serviceClient(ImageService, channel);
  await images.pullImage({ image: { image } }, { timeoutMs: 300_000 });
  const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
  const figures: Figures = { runPod: [], createStart: [], stopRemove: [], idleKb: 0, loadedKb: 0 };
  const podConfig = (name: string) => ({ metadata: { name, namespace: 'bench', uid: `${name}-uid`, attempt: 0 }, hostname: name, logDirectory: '/tmp/berth-bench-logs' });
  const containerConfig = { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], logPath: 'sleeper.log' };
  for (let i = 0; i < iterations; i++) {
    let t = process.hrtime.bigint();
    const pod = await runtime.runPodSandbox({ config: podConfig(`lat-${i}`) }, { timeoutMs: 120_000 });
    figures.runPod.push(ms(t));
    t = process.hrtime.bigint();
    const ctr = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config: containerConfig, sandboxConfig: podConfig(`lat-${i}`) }, { timeoutMs: 120_000 });
    await runtime.startContainer({ containerId: ctr.containerId }, { timeoutMs: 120_000 });
    figures.createStart.push(ms(t));
    t = process.hrtime.bigint();
    await runtime.stopContainer({ containerId: ctr.containerId, timeout: 0n }, { timeoutMs: 120_000 });
    await runtime.removeContainer({ containerId: ctr.containerId }, { timeoutMs: 120_000 });
    await runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId }, { timeoutMs: 120_000 });
    await runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }, { timeoutMs: 120_000 });
    figures.stopRemove.push(ms(t));
  }
  // Both daemons get the same quiet time before each reading, so a collector that
  // returns memory a little after the work (V8's and Go's both do) is measured at rest.
  await sleep(SETTLE_MS);
  figures.idleKb = await memory();
  const made: string[] = [];
  for (let i = 0; i < pods; i++) {
    const pod = await runtime.runPodSandbox({ config: podConfig(`mem-${i}`) }, { timeoutMs: 120_000 });
    const ctr = await runtime.createContainer({ podSandboxId: pod.podSandboxId, config: containerConfig, sandboxConfig: podConfig(`mem-${i}`) }, { timeoutMs: 120_000 });
    await runtime.startContainer({ containerId: ctr.containerId }, { timeoutMs: 120_000 });
    made.push(pod.podSandboxId);
  }
  await sleep(SETTLE_MS);
  figures.loadedKb = await memory();
  for (const id of made) {
    await runtime.stopPodSandbox({ podSandboxId: id }, { timeoutMs: 120_000 });
    await runtime.removePodSandbox({ podSandboxId: id }, { timeoutMs: 120_000 });
  }
  channel.close();
  return figures;
}

async function main(): Promise<void> {
  requireRoot();
  const iterations = numberArg('--iterations', 50);
  const pods = numberArg('--pods', 50);
  const scope = new Scope();
  try {
    const { registry, image } = await startBusyboxRegistry(scope);
    const pause = buildLayer([{ type: 'file', path: 'catatonit', content: readFileSync('/usr/bin/catatonit'), mode: 0o755 }]);
    await pushImage(registry, 'bench/pause', '1', { layers: [pause], config: { Entrypoint: ['/catatonit', '-P'] } });
    const net = await startPodNetwork(scope);

    const berthd = await startBerthd(scope, { cniConfDir: net.confDir, logLevel: 'warn' });
    const berthPid = berthd.process.pid!;
    const berth = await measure(berthd.endpoint, image, iterations, pods, () =>
      rssOf(async (cmd, pid) => pid === berthPid || (cmd.startsWith('/usr/bin/conmon') && cmd.includes(berthd.dir)) || (cmd.startsWith('/usr/bin/catatonit') && (await initOfPinIn(pid, join(berthd.dir, 'state', 'ns'))))),
    );
    await berthd.stop();

    const containerd = await startContainerd(scope, {
      cniConfDir: net.confDir,
      criToml: `sandbox_image = "${registry.host}/bench/pause:1"\n  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${registry.host}"]\n    endpoint = ["${registry.url}"]`,
    });
    const ctrdPid = containerd.process.pid!;
    const ctrd = await measure(containerd.endpoint, image, iterations, pods, () =>
      rssOf((cmd, pid) => pid === ctrdPid || (cmd.includes('containerd-shim') && cmd.includes(containerd.socket)) || cmd.startsWith('/catatonit -P')),
    );

    const row = (label: string, b: number[], c: number[]) => {
      const [b50, b95, c50, c95] = [percentile(b, 50), percentile(b, 95), percentile(c, 50), percentile(c, 95)];
      return `${label.padEnd(28)} ${b50.toFixed(1).padStart(8)} ${b95.toFixed(1).padStart(8)} ${c50.toFixed(1).padStart(10)} ${c95.toFixed(1).padStart(10)}   ${(b50 / c50).toFixed(2)}\n`;
    };
    process.stdout.write(`\n${iterations} iterations, runc, one busybox container per pod\n`);
    process.stdout.write(`${'ms'.padEnd(28)} ${'berth p50'.padStart(8)} ${'p95'.padStart(8)} ${'ctrd p50'.padStart(10)} ${'p95'.padStart(10)}   ratio p50\n`);
    process.stdout.write(row('RunPodSandbox', berth.runPod, ctrd.runPod));
    process.stdout.write(row('CreateContainer+Start', berth.createStart, ctrd.createStart));
    process.stdout.write(row('Stop+Remove (ctr and pod)', berth.stopRemove, ctrd.stopRemove));
    const mb = (kb: number) => (kb / 1024).toFixed(1);
    process.stdout.write(`\nresident memory, read ${SETTLE_MS / 1000} s after the work\n`);
    process.stdout.write(`MB                            berth   containerd   ratio\n`);
    process.stdout.write(`idle                       ${mb(berth.idleKb).padStart(8)} ${mb(ctrd.idleKb).padStart(12)}   ${(berth.idleKb / ctrd.idleKb).toFixed(2)}\n`);
    process.stdout.write(`with ${pods} running pods      ${mb(berth.loadedKb).padStart(8)} ${mb(ctrd.loadedKb).padStart(12)}   ${(berth.loadedKb / ctrd.loadedKb).toFixed(2)}\n`);
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/lifecycle failed: ${(err as { details?: string }).details ?? (err as Error).message}\n`);
  process.exit(1);
});
