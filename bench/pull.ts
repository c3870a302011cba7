// bench/pull: pull a ~200 MB, 6-layer image from a local registry into berthd and into
// containerd, in the same run on the same machine, and print seconds, MB/s and ratios.
// Each pull starts from an empty store (a fresh daemon), so nothing is cached.
//   node dist/bench/pull.js [--runs N] [--baseline OTHER/dist/src/bin/berthd.js] [--no-containerd]
// containerd 2.x is pulled with too when scripts/build-containerd2.sh has built it.
import { randomBytes } from 'node:crypto';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { buildLayer, busyboxEntries, pushImage, type BuiltLayer, type LayerEntry } from '../test/helpers/image-builder.js';
import { startRegistry } from '../test/helpers/registry.js';
import { Scope, median, requireRoot } from './harness.js';
import { startTargets } from './targets.js';

const LAYERS = 6;
const FILES_PER_LAYER = 200;
const FILE_BYTES = 256 * 1024;

function bigLayer(index: number): BuiltLayer {
  const entries: LayerEntry[] = [{ type: 'dir', path: `data${index}/` }];
  for (let i = 0; i < FILES_PER_LAYER; i++) {
    // Mostly random with some text: compresses about as little as typical binaries do.
    const content = Buffer.concat([randomBytes((FILE_BYTES * 4) / 5), Buffer.alloc(FILE_BYTES / 5, `layer ${index} file ${i}\n`)]);
    entries.push({ type: 'file', path: `data${index}/file-${i}.bin`, content, mode: 0o644 });
  }
  return buildLayer(entries, 'gzip');
}

async function timePull(endpoint: string, reference: string): Promise<number> {
  const channel = openChannel(endpoint);
  const images = serviceClient(ImageService, channel);
  const started = process.hrtime.bigint();
  try {
    await images.pullImage({ image: { image: reference } }, { timeoutMs: 600_000 });
  } finally {
    channel.close();
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function main(): Promise<void> {
  requireRoot();
  const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 3) || 3;
  const scope = new Scope();
  try {
    const registry = await startRegistry(scope);
    process.stdout.write(`building a ${LAYERS}-layer image ... `);
    const layers = [buildLayer(busyboxEntries()), ...Array.from({ length: LAYERS - 1 }, (_, i) => bigLayer(i))];
    const pushed = await pushImage(registry, 'bench/big', '1', { layers });
    const compressed = layers.reduce((a, l) => a + l.size, 0);
    const unpacked = layers.reduce((a, l) => a + l.tar.length, 0);
    process.stdout.write(`${(compressed / 1e6).toFixed(1)} MB compressed, ${(unpacked / 1e6).toFixed(1)} MB unpacked\n`);
    const reference = `${registry.host}/bench/big:1`;

    const seconds = new Map<string, number[]>();
    for (let run = 1; run <= runs; run++) {
      // Fresh daemons per run: empty content stores, nothing to reuse. The pulls run one
      // after another, in an order turned each run.
      const runScope = new Scope();
      try {
        const targets = await startTargets(runScope, { registry });
        const line: string[] = [];
        for (let k = 0; k < targets.length; k++) {
          const target = targets[(run + k) % targets.length]!;
          const s = await timePull(target.endpoint, reference);
          seconds.set(target.name, [...(seconds.get(target.name) ?? []), s]);
          line.push(`${target.name} ${s.toFixed(2)} s`);
        }
        process.stdout.write(`run ${run}: ${line.join(', ')}\n`);
      } finally {
        await runScope.close();
      }
    }
    const mb = compressed / 1e6;
    process.stdout.write(`\nimage ${pushed.configDigest.slice(0, 19)}: ${mb.toFixed(1)} MB in ${layers.length} layers; median of ${runs} pulls each\n`);
    process.stdout.write(`runtime              seconds    MB/s   berth/this (time)\n`);
    const berth = median(seconds.get('berth')!);
    for (const [name, list] of seconds) {
      const m = median(list);
      process.stdout.write(`${name.padEnd(20)} ${m.toFixed(2).padStart(7)}  ${(mb / m).toFixed(1).padStart(6)}  ${(berth / m).toFixed(2).padStart(8)}\n`);
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
