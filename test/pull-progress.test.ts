// berth.v1 ImagePullProgress: a pull's layers, their bytes as they arrive and their end,
// streamed to a watcher; and `berthctl pull` drawing them on a terminal (one line per
// layer, rewritten in place) while its plain output stays crictl's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ImagePullProgress } from '../src/gen/berth/v1/berth_pb.js';
import { ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd } from './helpers/berthd.js';
import { buildLayer, pushImage } from './helpers/image-builder.js';
import { DOCKER_REGISTRY, startRegistry } from './helpers/registry.js';
import { cleanup } from './helpers/scope.js';
import { run } from './helpers/processes.js';
import { BERTHCTL, isRoot } from './helpers/paths.js';
import { existsSync } from 'node:fs';

const skip = !isRoot ? 'needs root' : !existsSync(DOCKER_REGISTRY) ? 'docker-registry is needed' : false;

// Incompressible content, so each layer's compressed size is about its content's.
const layer = (name: string, bytes: number) => buildLayer([{ type: 'file', path: name, content: randomBytes(bytes) }]);

test('WatchPull streams each layer of a running pull to its end; berthctl pull draws them on a terminal', { skip, timeout: 120_000 }, async (t) => {
  const registry = await startRegistry(t);
  const pushed = await pushImage(registry, 'progress/big', '1', { layers: [layer('a', 3 << 20), layer('b', 2 << 20), layer('c', 1 << 20)] });
  const berthd = await startBerthd(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const image = `${registry.host}/progress/big:1`;

  const watcher = serviceClient(ImagePullProgress, channel);
  const seen: Array<Array<{ digest: string; size: bigint; fetched: bigint; done: boolean }>> = [];
  let messages = 0;
  let ready: () => void = () => undefined;
  const inPlace = new Promise<void>((resolve) => (ready = resolve));
  const watching = (async () => {
    for await (const progress of watcher.watchPull({ image })) {
      // The first message, empty, says the watch is in place.
      if (messages++ === 0) {
        assert.equal(progress.layers.length, 0);
        ready();
      } else seen.push(progress.layers);
    }
  })();
  await inPlace;
  await serviceClient(ImageService, channel).pullImage({ image: { image } }, { timeoutMs: 60_000 });
  await watching; // the stream ends with the pull
  assert.ok(seen.length >= 2, `several updates (${seen.length})`);
  const last = seen[seen.length - 1]!;
  assert.deepEqual(last.map((l) => l.digest), pushed.layers.map((l) => l.digest), "the manifest's layers, in its order");
  for (const l of last) assert.deepEqual([l.done, l.fetched], [true, l.size], `${l.digest} finished`);
  // Bytes only grow, never past the size (a fast loopback pull may finish a layer between two updates).
  for (let i = 1; i < seen.length; i++) {
    for (const [j, l] of seen[i]!.entries()) {
      assert.ok(l.fetched >= seen[i - 1]![j]!.fetched && l.fetched <= l.size, `layer ${j} in update ${i}`);
    }
  }
  const first = seen[0]!;
  assert.ok(first.every((l) => !l.done), 'nothing was on the node before');

  // berthctl on a terminal (script(1) gives it one): a line per layer, then crictl's line.
  const other = `${registry.host}/progress/other:1`;
  await pushImage(registry, 'progress/other', '1', { layers: [layer('d', 2 << 20), layer('e', 1 << 20)] });
  const tty = await run('script', ['-qec', `${process.execPath} ${BERTHCTL} -r ${berthd.endpoint} pull ${other}`, '/dev/null'], { env: { PATH: process.env.PATH, CRI_CONFIG_FILE: '/dev/null', TERM: 'xterm' } });
  assert.equal(tty.code, 0, tty.stdout + tty.stderr);
  assert.match(tty.stdout, /[0-9a-f]{12}: done +\S+B\/\S+B/, `per-layer lines:\n${JSON.stringify(tty.stdout)}`);
  assert.match(tty.stdout, /Image is up to date for sha256:[0-9a-f]{64}\r?\n$/);
  // Not a terminal: only crictl's line.
  const plain = await berthd.ctl(['pull', other]);
  assert.match(plain.stdout, /^Image is up to date for sha256:[0-9a-f]{64}\n$/);
});
