// What the polled calls keep between calls, and when it is dropped: the writable
// layer's usage (walked at most once per stats_collect_period, forgotten with its
// container), the image name index (made again after every change), the metrics'
// series keys; and a pod's network counters read through a process in its namespace
// (never through one that is not).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LayerUsageCache, writableLayerUsage, type LayerUsage } from '../src/container/container-stats.js';
import { ImageStore, type ImageRecord } from '../src/image/image-store.js';
import { keyOf } from '../src/metrics/prometheus.js';
import { podInterfaceCounters } from '../src/linux/netdev.js';
import { isRoot } from './helpers/paths.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { tempDir } from './helpers/tmp.js';

test('layer usage: one walk per max age, shared by callers at the same time, walked again after; forget drops it', async (t) => {
  const dir = await tempDir(t, 'layer-usage-');
  let now = 0;
  let walks = 0;
  const cache = new LayerUsageCache(1000, async (upper): Promise<LayerUsage> => {
    walks++;
    return writableLayerUsage(upper);
  }, () => now);
  await writeFile(join(dir, 'a'), Buffer.alloc(64 * 1024, 1));
  const [first, same] = await Promise.all([cache.get('c1', dir), cache.get('c1', dir)]);
  assert.equal(walks, 1, 'two callers at once share one walk');
  assert.deepEqual(first, same);
  assert.ok(first.bytes >= 64 * 1024, `the file counts (${first.bytes})`);
  await writeFile(join(dir, 'b'), Buffer.alloc(256 * 1024, 1));
  now = 999;
  assert.equal((await cache.get('c1', dir)).bytes, first.bytes, 'within the max age: the last figure');
  assert.equal(walks, 1);
  now = 1000;
  const later = await cache.get('c1', dir);
  assert.equal(walks, 2);
  assert.ok(later.bytes >= first.bytes + 256 * 1024, `after the max age the new file counts (${first.bytes} → ${later.bytes})`);
  assert.ok(later.inodes === first.inodes + 1);
  cache.forget('c1');
  assert.equal(cache.size, 0, 'a removed container keeps nothing');
  await cache.get('c1', dir);
  assert.equal(walks, 3, 'after forget the next call walks');
  // A walk that fails is not kept: the next call walks again.
  let failing = true;
  const flaky = new LayerUsageCache(10_000, async (upper) => {
    if (failing) throw new Error('gone');
    return writableLayerUsage(upper);
  });
  await assert.rejects(flaky.get('c2', dir), /gone/);
  failing = false;
  assert.ok((await flaky.get('c2', dir)).bytes > 0);
});

test('image name index: found by tag, digest and id; a tag moved to another image, or an image removed, is seen at once', async (t) => {
  const root = await tempDir(t, 'image-index-');
  const store = new ImageStore(root);
  await store.load();
  const image = (n: number, tags: string[]): ImageRecord => ({
    id: `sha256:${String(n).repeat(64).slice(0, 64)}`,
    repoTags: tags,
    repoDigests: [`example.com/app@sha256:${String(n + 1).repeat(64).slice(0, 64)}`],
    manifestDigest: `sha256:${'f'.repeat(64)}`,
    size: 1,
    layers: [],
    user: '',
    annotations: {},
    createdAt: new Date(0).toISOString(),
  });
  const a = await store.add(image(1, ['example.com/app:v1']));
  assert.equal(store.find('example.com/app:v1')?.id, a.id);
  assert.equal(store.find('example.com/app:v1')?.id, a.id, 'asked again: the same (the parse is kept)');
  assert.equal(store.find(`example.com/app@sha256:${'2'.repeat(64)}`)?.id, a.id);
  assert.equal(store.find(a.id)?.id, a.id);
  assert.equal(store.find('example.com/app:v2'), undefined);
  const b = await store.add(image(3, ['example.com/app:v1', 'example.com/app:v2']));
  assert.equal(store.find('example.com/app:v1')?.id, b.id, 'the tag moved to the new image');
  assert.equal(store.find('example.com/app:v2')?.id, b.id);
  assert.equal(store.find(`example.com/app@sha256:${'2'.repeat(64)}`)?.id, a.id, 'the old image keeps its digest');
  assert.ok(await store.remove(b.id));
  assert.equal(store.find('example.com/app:v1'), undefined, 'a removed image is gone at once');
  // Docker Hub's short names mean the same image as the long ones.
  await store.add(image(5, ['docker.io/library/busybox:1']));
  assert.equal(store.find('busybox:1')?.id, image(5, []).id);
});

test('metrics series keys: label sets that a plain join would confuse get different keys', () => {
  assert.notEqual(keyOf({ a: '1,b=2' }), keyOf({ a: '1', b: '2' }));
  assert.notEqual(keyOf({ a: '1:', b: '' }), keyOf({ a: '1', b: ':' }));
  assert.equal(keyOf({ method: 'Version', code: 'OK' }), keyOf({ code: 'OK', method: 'Version' }), 'label order does not matter');
});

test("pod network counters: read through a process in the pod's namespace, never through one outside it", { skip: !isRoot && 'needs root' }, async (t) => {
  // A namespace with a veth pair, held by a sleeping process.
  const holder = spawn('unshare', ['--net', 'sh', '-c', 'ip link add stats-d0 type veth peer name stats-d1 && ip link set stats-d0 up && echo ready && exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`the namespace holder exited (${code})`)));
  });
  const netns = `/proc/${holder.pid}/ns/net`;
  const viaNsenter = await podInterfaceCounters(netns, []);
  assert.deepEqual(viaNsenter.map((i) => i.name).sort(), ['stats-d0', 'stats-d1'], 'nsenter fallback: the pair, lo left out');
  const viaProc = await podInterfaceCounters(netns, [holder.pid!]);
  assert.deepEqual(viaProc.map((i) => i.name).sort(), ['stats-d0', 'stats-d1'], 'through /proc/PID/net/dev of the holder');
  // berthd's own pid is in the host's namespace: skipped, whatever its place in the list.
  const skipped = await podInterfaceCounters(netns, [process.pid, 0, holder.pid!]);
  assert.deepEqual(skipped.map((i) => i.name).sort(), ['stats-d0', 'stats-d1']);
  assert.ok(!skipped.some((i) => i.name === 'lo'));
});

test('stats with a short stats_collect_period: a file the container writes shows in its writable layer; a removed pod leaves ListPodSandboxStats at once', { skip: containerTestSkip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t, 'stats_collect_period = "1s"');
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'writer' }, image: { image }, command: ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; head -c 3000000 /dev/zero > /tmp/blob; touch /tmp/done; sleep 600'], logPath: 'writer.log' },
  });
  await runtime.startContainer({ containerId });
  const before = (await runtime.containerStats({ containerId })).stats!.writableLayer!.usedBytes!.value;
  assert.ok(before < 3_000_000n, `nothing written yet (${before})`);
  await runtime.execSync({ containerId, cmd: ['touch', '/tmp/go'], timeout: 5n });
  let after = before;
  const until = Date.now() + 15_000;
  while (after < 3_000_000n && Date.now() < until) {
    await sleep(250);
    after = (await runtime.containerStats({ containerId })).stats!.writableLayer!.usedBytes!.value;
  }
  assert.ok(after >= before + 3_000_000n, `the 3 MB file shows within the period (${before} → ${after})`);
  const listed = await runtime.listContainerStats({});
  assert.equal(listed.stats.find((s) => s.attributes?.id === containerId)?.writableLayer?.usedBytes?.value, after, 'the list answers the same figure');
  const pod = (await runtime.podSandboxStats({ podSandboxId: podId })).stats!;
  assert.equal(pod.linux?.network?.defaultInterface?.name, 'eth0', "the pod's network, read through its processes");
  assert.deepEqual((await runtime.listPodSandboxStats({})).stats.map((s) => s.attributes?.id), [podId]);
  await runtime.stopPodSandbox({ podSandboxId: podId });
  await runtime.removePodSandbox({ podSandboxId: podId });
  assert.deepEqual((await runtime.listPodSandboxStats({})).stats, [], 'the removed pod is gone from the next answer');
  assert.deepEqual((await runtime.listContainerStats({})).stats, [], 'and its container');
});
