// Big layers (WORKER_MIN_BYTES and more) are pulled through their worker's pipeline
// (LayerPipe: the worker hashes and stores the blob and unpacks it at once). What the
// main thread used to check must still hold there: a blob whose bytes do not match its
// digest, a layer whose tar does not match its diff ID, and a hostile tar each fail
// the pull with their precise status and leave no blob, snapshot or temp dir behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { launchBerthd, startBerthd, type TestBerthd } from './helpers/berthd.js';
import { cleanup } from './helpers/scope.js';
import { buildLayer, busyboxEntries, pushImage, type BuiltLayer } from './helpers/image-builder.js';
import { isRoot } from './helpers/paths.js';
import { DOCKER_REGISTRY, startRegistry, type TestRegistry } from './helpers/registry.js';
import { chainIds } from '../src/image/snapshot-store.js';
import { WORKER_MIN_BYTES } from '../src/image/layer-unpack-worker.js';

const skip = !isRoot ? 'needs root (ownership in layers)' : !existsSync(DOCKER_REGISTRY) ? 'docker-registry is not installed' : false;

/** A layer of random bytes (they do not compress), bigger than WORKER_MIN_BYTES. */
function bigLayer(extra: Parameters<typeof buildLayer>[0] = [], compression: Parameters<typeof buildLayer>[1] = 'gzip'): { layer: BuiltLayer; content: Buffer } {
  const content = randomBytes(WORKER_MIN_BYTES + 2 * 1024 * 1024);
  const layer = buildLayer([{ type: 'dir', path: 'big/' }, { type: 'file', path: 'big/blob.bin', content, mode: 0o640 }, ...extra], compression);
  assert.ok(layer.size >= WORKER_MIN_BYTES, `the layer is ${layer.size} bytes`);
  return { layer, content };
}

/** What the pull left in berthd's store. */
async function leftovers(berthd: TestBerthd): Promise<{ blobs: string[]; ingest: string[]; snapshots: string[] }> {
  const root = join(berthd.dir, 'root');
  return {
    blobs: await readdir(join(root, 'content', 'blobs', 'sha256')),
    ingest: await readdir(join(root, 'content', 'ingest')),
    snapshots: await readdir(join(root, 'snapshots')),
  };
}

/** The file docker-registry (distribution 2.8, filesystem driver) serves a blob from. */
function registryBlobFile(registry: TestRegistry, digest: string): string {
  const hex = digest.replace('sha256:', '');
  return join(registry.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

test('a big layer whose bytes do not match its digest fails the pull (DataLoss) and leaves no blob, partial or snapshot', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const base = buildLayer(busyboxEntries());
  // Uncompressed, so that no gzip CRC can catch the change first.
  const { layer } = bigLayer([], 'none');
  await pushImage(registry, 'pipe/corrupt', '1', { layers: [base, layer] });
  // Same length, other bytes (the registry does not check what it serves): the tar
  // still unpacks (the flip is inside the file's data) so only the digest can tell.
  const file = registryBlobFile(registry, layer.digest);
  const stored = await readFile(file);
  stored[stored.length >> 1] ^= 0xff;
  await writeFile(file, stored);

  const pull = await berthd.ctl(['pull', `${registry.host}/pipe/corrupt:1`]);
  assert.equal(pull.code, 1, 'the pull of a corrupt blob succeeded');
  assert.match(pull.stderr, new RegExp(`code = DataLoss desc = content digest mismatch: expected ${layer.digest}, got sha256:`));
  const left = await leftovers(berthd);
  assert.ok(!left.blobs.includes(layer.digest.replace('sha256:', '')), 'the corrupt blob was stored');
  assert.deepEqual(left.ingest, [], 'a partial download was left');
  const [, bigChain] = chainIds([base.diffId, layer.diffId]);
  assert.ok(!left.snapshots.includes(bigChain!.replace('sha256:', '')), 'a snapshot of the corrupt layer was made');
  assert.deepEqual(left.snapshots.filter((n) => n.startsWith('.unpack-')), [], 'unpack temp dirs left');
});

test('a big layer whose tar does not match the config\'s diff ID fails the pull (DataLoss) and leaves no snapshot', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const { layer } = bigLayer();
  const wrong = `sha256:${createHash('sha256').update('not this layer').digest('hex')}`;
  await pushImage(registry, 'pipe/diffid', '1', { layers: [{ ...layer, diffId: wrong }] });
  const pull = await berthd.ctl(['pull', `${registry.host}/pipe/diffid:1`]);
  assert.equal(pull.code, 1, 'a layer that does not match its diff ID was pulled');
  assert.match(pull.stderr, /code = DataLoss desc = layer content does not match the image config: diff ID sha256:[0-9a-f]{64}, config says sha256:/);
  const left = await leftovers(berthd);
  assert.deepEqual(left.snapshots, [], 'a snapshot or temp dir was left');
});

test('a big hostile layer is refused in its worker and writes nothing outside its snapshot', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const marker = `berth-pipe-escape-${randomBytes(4).toString('hex')}`;
  const { layer } = bigLayer([{ type: 'file', path: `../../../../../../tmp/${marker}`, content: 'escaped\n' }]);
  await pushImage(registry, 'pipe/hostile', '1', { layers: [layer] });
  const pull = await berthd.ctl(['pull', `${registry.host}/pipe/hostile:1`]);
  assert.equal(pull.code, 1, 'the hostile layer was pulled');
  assert.match(pull.stderr, /code = InvalidArgument desc = refusing layer: member ".*" leaves the layer with "\.\."/);
  assert.equal(existsSync(`/tmp/${marker}`), false, 'the layer wrote outside its snapshot');
  const left = await leftovers(berthd);
  assert.deepEqual(left.snapshots, [], 'a snapshot or temp dir was left');
});

test('a big layer pulled through its worker is stored and unpacked intact', { skip }, async (t) => {
  const registry = await startRegistry(t, { accessLog: true });
  const berthd = await startBerthd(t);
  const base = buildLayer(busyboxEntries());
  const { layer, content } = bigLayer();
  await pushImage(registry, 'pipe/good', '1', { layers: [base, layer] });
  const pull = await berthd.ctl(['pull', `${registry.host}/pipe/good:1`]);
  assert.equal(pull.code, 0, pull.stderr + berthd.logs().slice(-3000));
  const root = join(berthd.dir, 'root');
  const blob = await readFile(join(root, 'content', 'blobs', 'sha256', layer.digest.replace('sha256:', '')));
  assert.equal(`sha256:${createHash('sha256').update(blob).digest('hex')}`, layer.digest);
  const [, bigChain] = chainIds([base.diffId, layer.diffId]);
  const unpacked = await readFile(join(root, 'snapshots', bigChain!.replace('sha256:', ''), 'big', 'blob.bin'));
  assert.ok(unpacked.equals(content), 'the unpacked file differs from the layer\'s');
  assert.deepEqual((await leftovers(berthd)).ingest, [], 'partial download left');
  // The worker fetched it itself (its own plain-http client says "berth"), once.
  const blobGets = registry.logs().split('\n').filter((l) => l.includes(`"GET /v2/pipe/good/blobs/${layer.digest} HTTP/1.1"`));
  assert.equal(blobGets.length, 1, blobGets.join('\n'));
  assert.match(blobGets[0]!, /" 200 \d+ "[^"]*" "berth"$/);
});

/** Waits until the content store's partial file of `digest` holds some bytes (its download runs). */
async function downloadStarted(berthd: TestBerthd, digest: string): Promise<void> {
  const partial = join(berthd.dir, 'root', 'content', 'ingest', `${digest.replace('sha256:', '')}.partial`);
  for (let i = 0; i < 2000 && !((await stat(partial).catch(() => undefined))?.size ?? 0); i++) await sleep(5);
  assert.ok(existsSync(partial), 'the big blob never started downloading');
}

/** 64 MiB of random bytes, uncompressed: its transfer takes a while. */
function hugeLayer(): BuiltLayer {
  return buildLayer([{ type: 'file', path: 'huge.bin', content: randomBytes(64 * 1024 * 1024) }], 'none');
}

test('a big layer from a registry that asks for credentials: the worker\'s own request is refused and the client\'s (with them) pulls it', { skip }, async (t) => {
  const credentials = { user: 'berth', password: randomBytes(6).toString('hex') };
  const registry = await startRegistry(t, { htpasswd: credentials, accessLog: true });
  const berthd = await startBerthd(t);
  const { layer, content } = bigLayer();
  await pushImage(registry, 'pipe/private', '1', { layers: [layer], auth: credentials });
  const pull = await berthd.ctl(['pull', '--creds', `${credentials.user}:${credentials.password}`, `${registry.host}/pipe/private:1`]);
  assert.equal(pull.code, 0, pull.stderr + berthd.logs().slice(-3000));
  const root = join(berthd.dir, 'root');
  const unpacked = await readFile(join(root, 'snapshots', layer.diffId.replace('sha256:', ''), 'big', 'blob.bin'));
  assert.ok(unpacked.equals(content), 'the unpacked file differs from the layer\'s');
  // The worker's GET (no credentials) was answered 401, then the client's came with them.
  const blobGets = registry.logs().split('\n').filter((l) => l.includes(`GET /v2/pipe/private/blobs/${layer.digest}`));
  assert.ok(blobGets.some((l) => /" 401 \d+ "[^"]*" "berth"$/.test(l)), `no refused blob request from the worker in the registry's log:\n${blobGets.join('\n')}`);
  assert.ok(blobGets.some((l) => /" 200 \d+ /.test(l)), `no blob request answered:\n${blobGets.join('\n')}`);
  assert.deepEqual((await leftovers(berthd)).ingest, [], 'partial download left');
});

test('a big layer whose registry stalls mid-transfer fails after image_pull_progress_timeout (DeadlineExceeded) and leaves no blob', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t, { extraToml: 'image_pull_progress_timeout = "2s"' });
  const layer = hugeLayer();
  await pushImage(registry, 'pipe/stall', '1', { layers: [layer] });
  cleanup(t).after(() => registry.signal('SIGCONT'));
  const started = Date.now();
  const pulling = berthd.ctl(['--timeout', '60s', 'pull', `${registry.host}/pipe/stall:1`]);
  await downloadStarted(berthd, layer.digest);
  registry.signal('SIGSTOP');
  const pull = await pulling;
  const elapsed = Date.now() - started;
  assert.equal(pull.code, 1, 'the pull went through a stalled registry');
  assert.match(pull.stderr, /code = DeadlineExceeded desc = pull made no progress for 2s/);
  assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
  const left = await leftovers(berthd);
  assert.ok(!left.blobs.includes(layer.digest.replace('sha256:', '')), 'the unfinished blob was stored as complete');
  assert.deepEqual(left.snapshots, [], 'a snapshot or temp dir was left');
});

test('berthd killed halfway through a big layer leaves no complete-looking blob; after a restart the pull completes', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const layer = hugeLayer();
  const reference = `${registry.host}/pipe/killed:1`;
  await pushImage(registry, 'pipe/killed', '1', { layers: [layer] });
  const pulling = berthd.ctl(['--timeout', '60s', 'pull', reference]);
  await downloadStarted(berthd, layer.digest);
  const exited = berthd.process.exitCode === null && berthd.process.signalCode === null ? once(berthd.process, 'exit') : undefined;
  berthd.process.kill('SIGKILL');
  await exited;
  await pulling;
  const left = await leftovers(berthd);
  assert.ok(!left.blobs.includes(layer.digest.replace('sha256:', '')), 'a partial blob is among the complete ones');
  assert.deepEqual(left.snapshots.filter((n) => !n.startsWith('.unpack-')), [], 'a snapshot of the half-pulled layer is visible');

  const again = await launchBerthd(t, berthd.dir, join(berthd.dir, 'berth.toml'), join(berthd.dir, 'berth.sock'));
  const pull = await again.ctl(['pull', reference]);
  assert.equal(pull.code, 0, pull.stderr + again.logs().slice(-3000));
  const after = await leftovers(again);
  assert.ok(after.blobs.includes(layer.digest.replace('sha256:', '')), 'the blob is not stored');
  assert.deepEqual(after.ingest, [], 'partial download left');
  const blob = await readFile(join(berthd.dir, 'root', 'content', 'blobs', 'sha256', layer.digest.replace('sha256:', '')));
  assert.equal(`sha256:${createHash('sha256').update(blob).digest('hex')}`, layer.digest);
});

test('a big layer writing through its own absolute symlink is refused in its worker and writes nothing outside its snapshot', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const marker = `berth-pipe-symlink-${randomBytes(4).toString('hex')}`;
  const { layer } = bigLayer([
    { type: 'symlink', path: 'big/out', target: '/tmp' },
    { type: 'file', path: `big/out/${marker}`, content: 'escaped\n' },
  ]);
  await pushImage(registry, 'pipe/symlink', '1', { layers: [layer] });
  const pull = await berthd.ctl(['pull', `${registry.host}/pipe/symlink:1`]);
  assert.equal(pull.code, 1, 'a layer writing through an absolute symlink was pulled');
  assert.match(pull.stderr, /code = InvalidArgument desc = refusing layer: /);
  assert.equal(existsSync(`/tmp/${marker}`), false, 'the layer wrote through its symlink to the host');
  assert.deepEqual((await leftovers(berthd)).snapshots, [], 'a snapshot or temp dir was left');
});
