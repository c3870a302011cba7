// bench/raw-parts: what a pod with one container costs the host tools alone, with no
// runtime daemon around them, so berth's overhead over them can be stated: `ip netns
// add` + the CNI plugins' ADD (bridge with host-local, then portmap, as the pod network
// of the tests and benches), `runc create` + `runc start` of a busybox bundle in that
// netns, then the way down (`runc kill` + `runc delete`, the plugins' DEL in reverse,
// `ip netns del`). The overlay mount a runtime adds is timed on its own.
// `node dist/bench/cri-calls.js --raw` interleaves the same with berthd's calls.
//   node dist/bench/raw-parts.js [--iterations N]
import { startPodNetwork } from '../test/helpers/pod-network.js';
import { median, numberArg, percentile, requireRoot, Scope, stepTimer } from './harness.js';
import { RawHost } from './raw-host.js';

async function main(): Promise<void> {
  requireRoot();
  const iterations = numberArg('--iterations', 20);
  const scope = new Scope();
  try {
    const net = await startPodNetwork(scope);
    const raw = await RawHost.create(scope, net.confDir);
    const { times, timed } = stepTimer();
    for (let i = 0; i < iterations; i++) await raw.iteration(timed);
    console.log(`\n${iterations} iterations, host tools alone; ms`);
    console.log(`${'step'.padEnd(36)} ${'p50'.padStart(7)} ${'p95'.padStart(7)}`);
    for (const [name, values] of times) console.log(`${name.padEnd(36)} ${median(values).toFixed(1).padStart(7)} ${percentile(values, 95).toFixed(1).padStart(7)}`);
    const sum = (names: string[]) => names.reduce((s, n) => s + median(times.get(n) ?? [0]), 0);
    console.log(`${'pod + container up (sum of p50s)'.padEnd(36)} ${sum(['pod: ip netns add + CNI ADD', 'runc create + start']).toFixed(1).padStart(7)}`);
    console.log(`${'  with the overlay mount'.padEnd(36)} ${sum(['pod: ip netns add + CNI ADD', 'overlay mount', 'runc create + start']).toFixed(1).padStart(7)}`);
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
