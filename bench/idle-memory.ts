// bench/idle-memory: berthd's resident memory at rest, this build beside another
// (--baseline OTHER/dist/src/bin/berthd.js), both started together in each round: VmRSS of
// berthd and its children (the spawning helper while it lives) 10 s after start ("fresh"),
// right after a run of status and list calls ("after calls": --calls N of each of
// Version, ListPodSandbox, ListContainers, ListImages, ImageStatus and ListContainerStats,
// interleaved, the builds taking turns), 8 s after them (berthd gives back what a run of
// calls left once they paused: src/daemon/idle-memory.ts, 1 s and 7 s after), and after
// --idle S seconds at rest ("idle").
// Medians in MB over --rounds rounds (min-max in brackets). No pods: what berthd itself keeps.
// --variant FILE (repeatable) adds more entry files beside them, e.g. one whose #! line
// gives other node flags and imports this build's berthd.js (to measure a flag).
//   node dist/bench/idle-memory.js [--rounds 3] [--calls 250] [--idle 30] [--baseline OTHER/dist/src/bin/berthd.js] [--variant FILE]...
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImageService, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd } from '../test/helpers/berthd.js';
import { median, numberArg, parentOf, requireRoot, rssOf, Scope, stringArg } from './harness.js';

/** berthd and its direct children (the spawning helper; no pods run here), kB. */
function treeKb(pid: number): Promise<number> {
  return rssOf(async (_cmd, p) => p === pid || (await parentOf(p)) === pid);
}

const STEPS = ['fresh', 'after calls', 'after calls + 8 s', 'idle'] as const;
const SOON_MS = 8000;

async function main(): Promise<void> {
  requireRoot();
  const rounds = numberArg('--rounds', 3);
  const callsPerKind = numberArg('--calls', 250);
  const idleS = numberArg('--idle', 30);
  const baseline = stringArg('--baseline');
  const builds: { name: string; binary?: string }[] = [{ name: 'berth' }];
  if (baseline) builds.push({ name: 'berth-base', binary: baseline });
  process.argv.forEach((arg, i) => {
    if (arg === '--variant') builds.push({ name: process.argv[i + 1]!.replace(/^.*\//, ''), binary: process.argv[i + 1]! });
  });
  // figures[build][step] = MB per round
  const figures = builds.map(() => STEPS.map(() => [] as number[]));
  for (let round = 0; round < rounds; round++) {
    const scope = new Scope();
    try {
      const order = [...builds.keys()].map((_, k) => (k + round) % builds.length);
      const daemons: { i: number; pid: number; endpoint: string }[] = [];
      for (const i of order) {
        const berthd = await startBerthd(scope, { logLevel: 'warn', ...(builds[i]!.binary ? { binary: builds[i]!.binary } : {}) });
        daemons.push({ i, pid: berthd.process.pid!, endpoint: berthd.endpoint });
      }
      const read = async (step: number) => {
        for (const d of daemons) figures[d.i]![step]!.push((await treeKb(d.pid)) / 1024);
      };
      await sleep(10_000);
      await read(0);
      const opts = { timeoutMs: 30_000 };
      const clients = daemons.map((d) => {
        const channel = openChannel(d.endpoint);
        scope.after(() => channel.close());
        return { runtime: serviceClient(RuntimeService, channel), images: serviceClient(ImageService, channel) };
      });
      const kinds: ((c: (typeof clients)[number]) => Promise<unknown>)[] = [
        (c) => c.runtime.version({}, opts),
        (c) => c.runtime.listPodSandbox({}, opts),
        (c) => c.runtime.listContainers({}, opts),
        (c) => c.images.listImages({}, opts),
        (c) => c.images.imageStatus({ image: { image: 'bench/none:1' } }, opts),
        (c) => c.runtime.listContainerStats({}, opts),
      ];
      for (let n = 0; n < callsPerKind; n++) {
        for (const c of n % 2 ? [...clients].reverse() : clients) for (const call of kinds) await call(c);
      }
      await read(1);
      await sleep(SOON_MS);
      await read(2);
      await sleep(Math.max(0, idleS * 1000 - SOON_MS));
      await read(3);
      process.stdout.write(`round ${round + 1}: ${builds.map((b, i) => `${b.name} ${STEPS.map((_, s) => figures[i]![s]!.at(-1)!.toFixed(1)).join(' / ')}`).join(';  ')} MB\n`);
    } finally {
      await scope.close();
    }
  }
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  process.stdout.write(`\nVmRSS of berthd and its children, MB: median (min-max) of ${rounds} rounds; ${callsPerKind} calls of each of 6 kinds; load average now ${load}\n`);
  process.stdout.write(`| build | fresh (10 s after start) | right after the calls | ${SOON_MS / 1000} s after them | ${idleS} s after them |\n| --- | --- | --- | --- | --- |\n`);
  builds.forEach((b, i) => {
    const cells = figures[i]!.map((v) => `${median(v).toFixed(1)} (${Math.min(...v).toFixed(1)}-${Math.max(...v).toFixed(1)})`);
    process.stdout.write(`| ${b.name} | ${cells.join(' | ')} |\n`);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
