// The trash RemoveContainer and RemovePodSandbox drop their trees into (src/linux/trash.ts):
// the caller gets the tree out of its place at once and the deletion runs later; a kill -9
// between the rename and the deletion leaves a tree that the next start-up deletes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { emptyTrash, moveToTrash, trashEmptied } from '../src/linux/trash.js';
import { removeUnmounted } from '../src/linux/mount-table.js';
import { RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { launchBerthd } from './helpers/berthd.js';
import { containerTestSkip, setupContainerTest, waitExited } from './helpers/containers.js';
import { cleanup } from './helpers/scope.js';
import { tempDir } from './helpers/tmp.js';

const isRoot = process.getuid?.() === 0;

/** A tree of `files` files in 10 dirs, the way a container's writable layer fills. */
function fill(dir: string, files: number): void {
  for (let d = 0; d < 10; d++) {
    mkdirSync(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < files / 10; f++) writeFileSync(join(dir, `d${d}`, `f${f}`), 'x');
  }
}

test('moveToTrash takes a tree out of its place at once and deletes it afterwards', async (t) => {
  const dir = await tempDir(t, 'trash-');
  const tree = join(dir, 'bundle');
  const trash = join(dir, 'trash');
  fill(tree, 3000);
  assert.equal(moveToTrash(tree, trash), true);
  assert.equal(existsSync(tree), false, 'gone from its place when the call returns');
  const [moved] = readdirSync(trash);
  assert.match(moved ?? '', /^bundle\.[0-9a-f]{12}$/);
  assert.equal(readdirSync(join(trash, moved!, 'd9')).length, 300, 'not deleted before the call returned');
  await trashEmptied();
  assert.deepEqual(readdirSync(trash), [], 'deleted in the background');
  // Nothing there: nothing to do, and no trash needed.
  assert.equal(moveToTrash(join(dir, 'missing'), join(dir, 'no-trash')), true);
  assert.equal(existsSync(join(dir, 'no-trash')), false);
});

test('a process killed between the rename and the deletion leaves the tree in the trash; emptyTrash deletes it', async (t) => {
  const dir = await tempDir(t, 'trash-');
  const tree = join(dir, 'pod');
  const trash = join(dir, 'trash');
  fill(tree, 500);
  // SIGKILL right after the rename, before the deletion could even be asked for.
  const script = `import { moveToTrash } from ${JSON.stringify(new URL('../src/linux/trash.js', import.meta.url).href)};
moveToTrash(${JSON.stringify(tree)}, ${JSON.stringify(trash)}); process.kill(process.pid, 'SIGKILL');`;
  const killed = spawnSync(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(killed.signal, 'SIGKILL', killed.stderr.toString());
  assert.equal(existsSync(tree), false);
  assert.equal(readdirSync(trash).length, 1, 'the renamed tree is left in the trash');
  emptyTrash(trash);
  await trashEmptied();
  assert.deepEqual(readdirSync(trash), []);
});

test('removeUnmounted with a trash refuses a tree with a mount below, as without', { skip: isRoot ? false : 'needs root' }, async (t) => {
  const dir = await tempDir(t, 'trash-');
  const mounted = join(dir, 'bundle', 'rootfs');
  mkdirSync(mounted, { recursive: true });
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', mounted]).status, 0);
  t.after(() => spawnSync('umount', ['-l', mounted]));
  await assert.rejects(removeUnmounted([join(dir, 'bundle')], { trash: join(dir, 'trash') }), /still mounted/);
  assert.equal(existsSync(mounted), true);
  assert.equal(existsSync(join(dir, 'trash')), false, 'nothing moved');
});

test("RemoveContainer returns before its writable layer is deleted; berthd deletes what a kill -9 left in the trash at start-up", { skip: containerTestSkip }, async (t) => {
  const { berthd, runtime, image, podId } = await setupContainerTest(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'filler' }, image: { image }, command: ['sh', '-c', 'mkdir /data; i=0; while [ $i -lt 2000 ]; do echo x > /data/f$i; i=$((i+1)); done'], logPath: 'filler.log' },
  });
  await runtime.startContainer({ containerId });
  await waitExited(runtime, containerId, 60_000);
  const state = join(berthd.dir, 'state');
  const bundle = join(state, 'containers', containerId);
  assert.equal(readdirSync(join(bundle, 'upper', 'data')).length, 2000);
  await runtime.removeContainer({ containerId });
  assert.equal(existsSync(bundle), false, 'the bundle is out of its place when RemoveContainer returns');
  // A crash between a rename and its deletion, played while berthd is down: a tree in the trash.
  await berthd.stop('SIGKILL');
  const left = join(state, 'trash', `${containerId}.0123456789ab`);
  fill(join(left, 'upper'), 1000);
  const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const channel = openChannel(again.endpoint);
  cleanup(t).after(() => channel.close());
  const until = Date.now() + 20_000;
  while (readdirSync(join(state, 'trash')).length > 0 && Date.now() < until) await sleep(50);
  assert.deepEqual(readdirSync(join(state, 'trash')), [], 'the trash is empty after the restart');
  await serviceClient(RuntimeService, channel).removePodSandbox({ podSandboxId: podId }, { timeoutMs: 60_000 });
  assert.equal(existsSync(join(state, 'pods', podId)), false, 'the pod dir is out of its place');
});
