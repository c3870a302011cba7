// bench/pull: pull a ~200 MB, 6-layer image from a local registry into berthd and into
// containerd, in the same run on the same machine, and print seconds, MB/s, each
// daemon's CPU time for the pull (/proc/PID/stat: all its threads; steadier than the
// seconds on a loaded machine; its system share printed apart) and ratios. Each pull starts from an empty store (a fresh
// daemon), so nothing is cached.
//   node dist/bench/pull.js [--runs N] [--baseline OTHER/dist/src/bin/berthd.js] [--no-containerd] [--small] [--threads]
// --small: a ~1 MB one-layer busybox image instead (as the kubelet's small pulls), a new
// one per run (a file of its own in the layer), into the same daemons.
// containerd 2.x is pulled with too when scripts/build-containerd2.sh has built it.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { buildLayer, busyboxEntries, pushImage, type BuiltLayer, type LayerEntry } from '../test/helpers/image-builder.js';
import { startRegistry } from '../test/helpers/registry.js';
import { Scope, median, requireRoot, statFields } from './harness.js';
import { startTargets, type Target } from './targets.js';

const LAYERS = 6;
const FILES_PER_LAYER = 200;
const FILE_BYTES = 256 * 1024;
/** --threads: each daemon's CPU per kind of thread (main, layer workers, V8's, libuv's) for each pull. */
const perThread = process.argv.includes('--threads');

function bigLayer(index: number): BuiltLayer {
  const entries: LayerEntry[] = [{ type: 'dir', path: `data${index}/` }];
  for (let i = 0; i < FILES_PER_LAYER; i++) {
    // Mostly random with some text: compresses about as little as typical binaries do.
    const content = Buffer.concat([randomBytes((FILE_BYTES * 4) / 5), Buffer.alloc(FILE_BYTES / 5, `layer ${index} file ${i}\n`)]);
    entries.push({ type: 'file', path: `data${index}/file-${i}.bin`, content, mode: 0o644 });
  }
  return buildLayer(entries, 'gzip');
}

/** A process's user and system CPU milliseconds, all its threads (/proc/PID/stat). */
function cpuSplitMs(pid: number): { user: number; sys: number } {
  const fields = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 };
}

/** Each thread's name, user and system CPU ms (/proc/PID/task/TID/stat), by thread id. */
function threadCpuMs(pid: number): Map<string, { name: string; user: number; sys: number }> {
  const threads = new Map<string, { name: string; user: number; sys: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = statFields(stat);
      threads.set(tid, { name, user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return threads;
}

/** The CPU ms each kind of thread used between two threadCpuMs readings ("user/sys" per name). */
function threadSplit(before: ReturnType<typeof threadCpuMs>, after: ReturnType<typeof threadCpuMs>, mainTid: string): string {
  const byName = new Map<string, { user: number; sys: number; n: number }>();
  for (const [tid, t] of after) {
    const b = before.get(tid) ?? { user: 0, sys: 0 };
    // Threads started during the pull are the layer workers; V8's and libuv's threads were there before.
    const name = tid === mainTid ? 'main' : before.has(tid) ? `other ${t.name}` : 'new';
    const sum = byName.get(name) ?? { user: 0, sys: 0, n: 0 };
    sum.user += t.user - b.user;
    sum.sys += t.sys - b.sys;
    if (t.user + t.sys - b.user - b.sys > 0) sum.n++;
    byName.set(name, sum);
  }
  return [...byName].filter(([, s]) => s.user + s.sys > 0).map(([name, s]) => `${name}×${s.n} ${(s.user / 1000).toFixed(2)}+${(s.sys / 1000).toFixed(2)}`).join(', ');
}

/** Seconds of one pull, and the daemon's CPU seconds meanwhile (all, and the system's share). */
async function timePull(target: Target, reference: string): Promise<{ seconds: number; cpu: number; sys: number }> {
  const channel = openChannel(target.endpoint);
  const images = serviceClient(ImageService, channel);
  const threadsBefore = perThread ? threadCpuMs(target.pid) : undefined;
  const cpuBefore = cpuSplitMs(target.pid);
  const started = process.hrtime.bigint();
  try {
    await images.pullImage({ image: { image: reference } }, { timeoutMs: 600_000 });
  } finally {
    channel.close();
  }
  const cpuAfter = cpuSplitMs(target.pid);
  if (threadsBefore) process.stdout.write(`  ${target.name} threads (user+sys s): ${threadSplit(threadsBefore, threadCpuMs(target.pid), String(target.pid))}\n`);
  const sys = (cpuAfter.sys - cpuBefore.sys) / 1000;
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, cpu: (cpuAfter.user - cpuBefore.user) / 1000 + sys, sys };
}

function smallLayer(run: number): BuiltLayer {
  return buildLayer([...busyboxEntries(), { type: 'file', path: 'etc/bench-run', content: `${run} ${randomBytes(8).toString('hex')}\n` }], 'gzip');
}

async function main(): Promise<void> {
  requireRoot();
  const small = process.argv.includes('--small');
  const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 0) || (small ? 10 : 3);
  const scope = new Scope();
  try {
    const registry = await startRegistry(scope);
    // One image per run when small (pulled into the same daemons), else one for all runs.
    const images: Array<{ reference: string; layers: BuiltLayer[] }> = [];
    if (small) {
      process.stdout.write(`building ${runs} one-layer busybox images ... `);
      for (let run = 1; run <= runs; run++) {
        const layers = [smallLayer(run)];
        await pushImage(registry, 'bench/small', String(run), { layers });
        images.push({ reference: `${registry.host}/bench/small:${run}`, layers });
      }
    } else {
      process.stdout.write(`building a ${LAYERS}-layer image ... `);
      const layers = [buildLayer(busyboxEntries()), ...Array.from({ length: LAYERS - 1 }, (_, i) => bigLayer(i))];
      await pushImage(registry, 'bench/big', '1', { layers });
      images.push({ reference: `${registry.host}/bench/big:1`, layers });
    }
    const layers = images[0]!.layers;
    const compressed = layers.reduce((a, l) => a + l.size, 0);
    const unpacked = layers.reduce((a, l) => a + l.tar.length, 0);
    process.stdout.write(`${(compressed / 1e6).toFixed(1)} MB compressed, ${(unpacked / 1e6).toFixed(1)} MB unpacked\n`);

    const seconds = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    const sys = new Map<string, number[]>();
    // Small pulls share daemons (started once); big ones get fresh daemons per run:
    // empty content stores, nothing to reuse. The pulls run one after another, in an
    // order turned each run.
    const shared = small ? new Scope() : undefined;
    try {
      const sharedTargets = shared && (await startTargets(shared, { registry }));
      for (let run = 1; run <= runs; run++) {
        const runScope = new Scope();
        try {
          const targets = sharedTargets ?? (await startTargets(runScope, { registry }));
          const reference = images[small ? run - 1 : 0]!.reference;
          const line: string[] = [];
          for (let k = 0; k < targets.length; k++) {
            const target = targets[(run + k) % targets.length]!;
            const pulled = await timePull(target, reference);
            seconds.set(target.name, [...(seconds.get(target.name) ?? []), pulled.seconds]);
            cpu.set(target.name, [...(cpu.get(target.name) ?? []), pulled.cpu]);
            sys.set(target.name, [...(sys.get(target.name) ?? []), pulled.sys]);
            line.push(`${target.name} ${small ? `${(pulled.seconds * 1000).toFixed(0)} ms` : `${pulled.seconds.toFixed(2)} s`} (cpu ${pulled.cpu.toFixed(2)} s, sys ${pulled.sys.toFixed(2)})`);
          }
          process.stdout.write(`run ${run}: ${line.join(', ')}\n`);
        } finally {
          await runScope.close();
        }
      }
    } finally {
      await shared?.close();
    }
    const mb = compressed / 1e6;
    process.stdout.write(`\n${small ? 'small images' : 'image'}: ${mb.toFixed(1)} MB in ${layers.length} layers; median of ${runs} pulls each\n`);
    process.stdout.write(`runtime              ${small ? '     ms' : 'seconds'}    MB/s   cpu s   (sys)   berth/this (time)  (cpu)\n`);
    const berth = median(seconds.get('berth')!);
    const berthCpu = median(cpu.get('berth')!);
    for (const [name, list] of seconds) {
      const m = median(list);
      const c = median(cpu.get(name)!);
      const time = small ? (m * 1000).toFixed(0) : m.toFixed(2);
      process.stdout.write(
        `${name.padEnd(20)} ${time.padStart(7)}  ${(mb / m).toFixed(1).padStart(6)}  ${c.toFixed(2).padStart(6)}  ${median(sys.get(name)!).toFixed(2).padStart(6)}  ${(berth / m).toFixed(2).padStart(8)}  ${(c > 0 ? berthCpu / c : NaN).toFixed(2).padStart(12)}\n`,
      );
    }
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  const status = err as Partial<GrpcCallError>;
  process.stderr.write(`bench/pull failed: ${status.details ?? (err as Error).message}\n`);
  process.exit(1);
});
