// The layer worker pool: jobs spread by their bytes over one more worker than the cores
// (so equal layers that outnumber the cores still end together), and workers started
// ahead of a pull's big layers (warmLayerWorkers) take them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildLayer } from './helpers/image-builder.js';
import { tempDir } from './helpers/tmp.js';
import { layerWorkerCount, pickWorker, unpackInWorker, warmLayerWorkers, WORKER_MIN_BYTES } from '../src/image/layer-unpack-worker.js';

/** Places jobs of these weights one after another, as startJob does; answers each worker's jobs. */
function place(weights: number[], poolSize: number): number[][] {
  const workers: Array<{ load: number; jobs: number; weights: number[] }> = [];
  for (const weight of weights) {
    let i = pickWorker(workers, poolSize);
    if (i < 0) i = workers.push({ load: 0, jobs: 0, weights: [] }) - 1;
    const w = workers[i]!;
    w.load += weight;
    w.jobs++;
    w.weights.push(weight);
  }
  return workers.map((w) => w.weights);
}

test('five equal layers on a pool of three are placed 2, 2, 1: no worker has more than the cores\' fair share', () => {
  assert.deepEqual(place([40, 40, 40, 40, 40], 3).map((w) => w.length).sort(), [1, 2, 2]);
});

test('layers placed biggest first go to the least loaded worker by bytes, not by job count', () => {
  // 100 alone on one worker; the small ones share the others.
  const placed = place([100, 60, 50, 30, 20, 10], 3);
  assert.deepEqual(placed[0], [100]);
  assert.deepEqual(
    placed.map((w) => w.reduce((a, b) => a + b, 0)),
    [100, 90, 80],
  );
});

test('an idle worker is reused before a new one is started', () => {
  assert.equal(pickWorker([{ load: 0, jobs: 0 }], 3), 0);
  assert.equal(pickWorker([{ load: 5, jobs: 1 }], 3), -1);
  assert.equal(pickWorker([{ load: 5, jobs: 1 }, { load: 7, jobs: 1 }, { load: 9, jobs: 2 }], 3), 0);
  assert.equal(pickWorker([], 3), -1);
});

test('warmed workers take the layers unpacked at once, each intact', async (t) => {
  const before = layerWorkerCount();
  warmLayerWorkers(before + 2);
  assert.ok(layerWorkerCount() >= Math.min(3, before + 2), `${layerWorkerCount()} workers after warming`);
  const dir = await tempDir(t, 'layer-workers-');
  const layers = [0, 1, 2].map((i) => {
    const content = randomBytes(WORKER_MIN_BYTES / 4 + i);
    return { content, layer: buildLayer([{ type: 'dir', path: `d${i}/` }, { type: 'file', path: `d${i}/f.bin`, content, mode: 0o644 }], 'gzip') };
  });
  for (const i of [0, 1, 2]) await mkdir(join(dir, String(i)));
  const results = await Promise.all(
    layers.map(({ layer }, i) => unpackInWorker(Readable.from([layer.blob.subarray(0, 1000), layer.blob.subarray(1000)]), join(dir, String(i)), layer.size)),
  );
  for (const [i, { layer, content }] of layers.entries()) {
    assert.equal(results[i]!.diffId, layer.diffId);
    assert.ok(content.equals(await readFile(join(dir, String(i), `d${i}`, 'f.bin'))), `layer ${i}'s file differs`);
  }
  // Warming never goes past the pool's size.
  warmLayerWorkers(1000);
  assert.ok(layerWorkerCount() <= 5, `${layerWorkerCount()} workers`);
});
