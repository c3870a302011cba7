// bench/server-calls: berthd's own cost per gRPC call, with nothing behind the call
// (Version): the transport, HPACK, the RPC wrapper, protobuf. Calls go from berth's own
// client in blocks of 500, the builds taking turns, so a shared machine slows both alike.
// With --cpu-prof DIR each berthd writes a V8 CPU profile there when it stops.
//   node dist/bench/server-calls.js [--calls N] [--baseline OTHER/dist/src/bin/berthd.js] [--cpu-prof DIR]
import { RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd } from '../test/helpers/berthd.js';
import { cpuMs, median, numberArg, requireRoot, Scope, stringArg } from './harness.js';

const BLOCK = 500;

async function main(): Promise<void> {
  requireRoot();
  const calls = numberArg('--calls', 3000);
  const profileDir = stringArg('--cpu-prof');
  const baseline = stringArg('--baseline');
  // As berthd's #! line runs it, plus the profiler.
  const prefix = profileDir ? [process.execPath, '--max-semi-space-size=1', '--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const scope = new Scope();
  try {
    const builds: { name: string; binary?: string }[] = [{ name: 'berth' }];
    if (baseline) builds.push({ name: 'berth-base', binary: baseline });
    const targets = [];
    for (const build of builds) {
      const berthd = await startBerthd(scope, { logLevel: 'info', prefix, ...(build.binary ? { binary: build.binary } : {}) });
      const channel = openChannel(berthd.endpoint);
      scope.after(() => channel.close());
      const runtime = serviceClient(RuntimeService, channel);
      // Warm-up: the JIT, and the first connection.
      for (let i = 0; i < 200; i++) await runtime.version({}, { timeoutMs: 10_000 });
      targets.push({ name: build.name, pid: berthd.process.pid!, runtime, cpu: 0, done: 0, blockMs: [] as number[] });
    }
    while (targets.some((t) => t.done < calls)) {
      for (const target of targets) {
        const n = Math.min(BLOCK, calls - target.done);
        const before = cpuMs(target.pid);
        const started = process.hrtime.bigint();
        for (let i = 0; i < n; i++) await target.runtime.version({}, { timeoutMs: 10_000 });
        target.blockMs.push(Number(process.hrtime.bigint() - started) / 1e6 / n);
        target.cpu += cpuMs(target.pid) - before;
        target.done += n;
      }
    }
    process.stdout.write(`\n${calls} Version calls each, blocks of ${BLOCK} interleaved\n`);
    process.stdout.write(`${'build'.padEnd(12)}${'ms/call (median block)'.padStart(24)}${'daemon CPU µs/call'.padStart(22)}\n`);
    for (const t of targets) {
      process.stdout.write(`${t.name.padEnd(12)}${median(t.blockMs).toFixed(3).padStart(24)}${((t.cpu / t.done) * 1000).toFixed(0).padStart(22)}\n`);
    }
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
