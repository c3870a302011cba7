// Pulling images through berthd from a real registry (Debian's docker-registry on
// loopback), with test images built from Debian's busybox-static.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import { ImageService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { startBerthd, type TestBerthd } from './helpers/berthd.js';
import { buildLayer, busyboxEntries, pushImage, pushIndex, type LayerEntry } from './helpers/image-builder.js';
import { expectedUnion, listTree } from './helpers/layer-tree.js';
import { isRoot } from './helpers/paths.js';
import { run } from './helpers/processes.js';
import { DOCKER_REGISTRY, startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { startTokenService } from './helpers/token-service.js';
import { cleanup } from './helpers/scope.js';

const skip = !isRoot ? 'needs root (overlay mounts, ownership)' : !existsSync(DOCKER_REGISTRY) ? 'docker-registry is not installed' : false;

function imageClient(t: { after(fn: () => unknown): void }, berthd: TestBerthd) {
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  return serviceClient(ImageService, channel);
}

// Bottom layer: busybox plus the things later layers change.
const baseExtras: LayerEntry[] = [
  { type: 'dir', path: 'data/' },
  { type: 'file', path: 'data/keep.txt', content: 'keep\n' },
  { type: 'file', path: 'data/delete-me.txt', content: 'gone soon\n' },
  { type: 'dir', path: 'cache/' },
  { type: 'file', path: 'cache/old-1', content: 'old 1\n' },
  { type: 'dir', path: 'cache/sub/' },
  { type: 'file', path: 'cache/sub/old-2', content: 'old 2\n' },
  { type: 'file', path: 'opt/tool', content: '#!/bin/sh\necho tool\n', mode: 0o4755, uid: 0, gid: 0 },
  { type: 'file', path: 'home/app/owned.txt', content: 'mine\n', uid: 1000, gid: 2000, mode: 0o640 },
];

// Middle layer (zstd): deletes a file (whiteout), replaces a directory (opaque), links.
const changes: LayerEntry[] = [
  { type: 'file', path: 'data/.wh.delete-me.txt', content: '' },
  { type: 'dir', path: 'cache/' },
  { type: 'file', path: 'cache/.wh..wh..opq', content: '' },
  { type: 'file', path: 'cache/new', content: 'new\n' },
  { type: 'file', path: 'data/original.txt', content: 'linked content\n', mode: 0o600 },
  { type: 'hardlink', path: 'data/hardlink.txt', target: 'data/original.txt' },
  { type: 'symlink', path: 'data/symlink', target: '../data/keep.txt' },
  { type: 'fifo', path: 'data/pipe', mode: 0o644 },
  { type: 'char', path: 'data/null', major: 1, minor: 3, mode: 0o666 },
];

// Top layer (uncompressed): a file with an xattr and a long name.
const top: LayerEntry[] = [
  { type: 'file', path: `data/${'long-name-'.repeat(12)}end.txt`, content: 'long\n' },
  { type: 'file', path: 'data/with-xattr', content: 'x\n', xattrs: { 'user.berth': 'test-value' } },
];

test('a multi-layer image unpacks to exactly the union of its layers', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const layers = [buildLayer([...busyboxEntries(), ...baseExtras], 'gzip'), buildLayer(changes, 'zstd'), buildLayer(top, 'none')];
  const pushed = await pushImage(registry, 'test/union', 'v1', { layers, config: { User: '1000', Cmd: ['/bin/sh'] } });
  const reference = `${registry.host}/test/union:v1`;

  const pull = await berthd.ctl(['pull', reference]);
  assert.equal(pull.code, 0, pull.stderr + berthd.logs().slice(-3000));
  assert.equal(pull.stdout.trim(), `Image is up to date for ${pushed.configDigest}`);

  const images = imageClient(t, berthd);
  const status = await images.imageStatus({ image: { image: reference }, verbose: true });
  assert.ok(status.image, 'the pulled image has a status');
  assert.equal(status.image.id, pushed.configDigest);
  assert.deepEqual(status.image.repoTags, [reference]);
  assert.deepEqual(status.image.repoDigests, [`${registry.host}/test/union@${pushed.manifestDigest}`]);
  assert.equal(status.image.uid?.value, 1000n);
  const expectedSize = pushed.manifestSize + pushed.config.length + layers.reduce((a, l) => a + l.size, 0);
  assert.equal(status.image.size, BigInt(expectedSize));
  const info = JSON.parse(status.info.info!) as { layers: Array<{ chainId: string; diffId: string }> };
  assert.deepEqual(info.layers.map((l) => l.diffId), layers.map((l) => l.diffId));

  // Mount the snapshots as overlay lowerdirs (top first) and compare with the union.
  const work = await tempDir(t, 'overlay-');
  const merged = join(work, 'merged');
  const empty = join(work, 'empty');
  await mkdir(merged);
  await mkdir(empty);
  const lowers = info.layers.map((l) => join(berthd.dir, 'root', 'snapshots', l.chainId.replace('sha256:', ''))).reverse();
  const mount = await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${[...lowers, empty].join(':')}`, merged]);
  assert.equal(mount.code, 0, mount.stderr);
  const actual = await listTree(merged);
  const expected = expectedUnion([[...busyboxEntries(), ...baseExtras], changes, top]);
  const diff = [...new Set([...actual.keys(), ...expected.keys()])]
    .filter((p) => actual.get(p) !== expected.get(p))
    .map((p) => `${p}: got ${actual.get(p)} want ${expected.get(p)}`);
  assert.deepEqual(diff, [], 'merged tree differs from the union of the layers');

  // What the listing cannot show: owners, the hard link, the xattr.
  const owned = await stat(join(merged, 'home/app/owned.txt'));
  assert.deepEqual([owned.uid, owned.gid], [1000, 2000]);
  const original = await stat(join(lowers[1]!, 'data/original.txt'));
  const hardlink = await stat(join(lowers[1]!, 'data/hardlink.txt'));
  assert.equal(hardlink.ino, original.ino, 'the hard link shares the inode in its snapshot');
  const xattr = await run('getfattr', ['--only-values', '-n', 'user.berth', join(merged, 'data/with-xattr')]);
  assert.equal(xattr.stdout, 'test-value');
  assert.ok(!existsSync(join(merged, 'data/delete-me.txt')));
  assert.deepEqual((await readdir(join(merged, 'cache'))).sort(), ['new']);
});

test('a multi-arch index pulls the image for this machine', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const layer = buildLayer(busyboxEntries(), 'gzip', 'docker');
  const amd64 = await pushImage(registry, 'test/multi', undefined, { layers: [layer], architecture: 'amd64', format: 'docker', config: { Cmd: ['amd64'] } });
  const arm64 = await pushImage(registry, 'test/multi', undefined, { layers: [layer], architecture: 'arm64', format: 'docker', config: { Cmd: ['arm64'] } });
  const index = await pushIndex(
    registry,
    'test/multi',
    'latest',
    [
      { image: arm64, platform: { architecture: 'arm64', os: 'linux' } },
      { image: amd64, platform: { architecture: 'amd64', os: 'linux' } },
    ],
    'docker',
  );
  const pull = await berthd.ctl(['pull', `${registry.host}/test/multi`]);
  assert.equal(pull.code, 0, pull.stderr);
  const expected = process.arch === 'arm64' ? arm64 : amd64;
  assert.match(pull.stdout, new RegExp(expected.configDigest));
  const list = JSON.parse((await berthd.ctl(['images', '-o', 'json'])).stdout) as { images: Array<{ repoTags: string[]; repoDigests: string[] }> };
  assert.deepEqual(list.images[0]!.repoTags, [`${registry.host}/test/multi:latest`]);
  assert.deepEqual(list.images[0]!.repoDigests, [`${registry.host}/test/multi@${index.digest}`], 'the repo digest is the index the tag names');

  const s390x = await pushImage(registry, 'test/ghost', undefined, { layers: [layer], architecture: 's390x', format: 'docker' });
  const ghost = await pushIndex(registry, 'test/ghost', 'latest', [{ image: s390x, platform: { architecture: 's390x', os: 'linux' } }], 'docker');
  assert.ok(ghost.digest);
  const none = await berthd.ctl(['pull', `${registry.host}/test/ghost`]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /code = NotFound desc = .*no image for linux\/\w+ in its index \(it has: linux\/s390x\)/);
});

test('a registry with basic auth: refused without credentials, pulled with --creds and AuthConfig', { skip }, async (t) => {
  const credentials = { user: 'berth', password: randomBytes(6).toString('hex') };
  const registry = await startRegistry(t, { htpasswd: credentials });
  const berthd = await startBerthd(t);
  await pushImage(registry, 'private/app', '1', { layers: [buildLayer(busyboxEntries())], auth: credentials });
  const reference = `${registry.host}/private/app:1`;

  const refused = await berthd.ctl(['pull', reference]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /code = Unauthenticated desc = pull access denied/);
  const wrong = await berthd.ctl(['pull', '--creds', `${credentials.user}:nope`, reference]);
  assert.match(wrong.stderr, /code = Unauthenticated/);

  const withCreds = await berthd.ctl(['pull', '--creds', `${credentials.user}:${credentials.password}`, reference]);
  assert.equal(withCreds.code, 0, withCreds.stderr);
  assert.equal((await berthd.ctl(['rmi', reference])).code, 0);

  const images = imageClient(t, berthd);
  const auth = Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64');
  const response = await images.pullImage({ image: { image: reference }, auth: { auth } });
  assert.match(response.imageRef, /^sha256:/);
  await images.removeImage({ image: { image: reference } });
  const byFields = await images.pullImage({ image: { image: reference }, auth: { username: credentials.user, password: credentials.password } });
  assert.equal(byFields.imageRef, response.imageRef);
});

const hostile: Array<{ name: string; entries: (marker: string) => LayerEntry[]; escaped: (marker: string, berthd: TestBerthd) => string }> = [
  {
    name: 'path traversal',
    entries: (m) => [{ type: 'file', path: `../../../../${m}`, content: 'escaped\n' }],
    escaped: (m, b) => join(b.dir, m),
  },
  {
    name: 'absolute path',
    entries: (m) => [{ type: 'file', path: `/tmp/${m}`, content: 'escaped\n' }],
    escaped: (m) => `/tmp/${m}`,
  },
  {
    name: 'symlink escape',
    entries: (m) => [
      { type: 'symlink', path: 'evil', target: '/tmp' },
      { type: 'file', path: `evil/${m}`, content: 'escaped\n' },
    ],
    escaped: (m) => `/tmp/${m}`,
  },
  {
    name: 'symlink then directory mode change',
    entries: (m) => [
      { type: 'dir', path: 'victim/', mode: 0o777 },
      { type: 'symlink', path: 'victim', target: `/tmp/${m}` },
    ],
    escaped: (m) => `/tmp/${m}/touched`,
  },
  {
    name: 'hard link escape',
    entries: () => [{ type: 'hardlink', path: 'passwd', target: '../../../../../../etc/passwd' }],
    escaped: () => '',
  },
];

test('hostile layers are refused and nothing outside the snapshot changes', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  const passwdBefore = await stat('/etc/passwd');
  for (const [i, attack] of hostile.entries()) {
    const marker = `berth-escape-${randomBytes(4).toString('hex')}`;
    if (attack.name.startsWith('symlink then')) {
      await mkdir(`/tmp/${marker}`, { mode: 0o700 });
      cleanup(t).after(() => rmdir(`/tmp/${marker}`).catch(() => undefined));
    }
    const layer = buildLayer([{ type: 'dir', path: 'ok/' }, ...attack.entries(marker)], 'gzip');
    await pushImage(registry, `hostile/${i}`, 'latest', { layers: [layer] });
    const pull = await berthd.ctl(['pull', `${registry.host}/hostile/${i}`]);
    if (attack.name.startsWith('symlink then')) {
      // Replacing a directory by a symlink is legal tar; the directory's mode must not
      // be applied through the symlink to its target.
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(((await stat(`/tmp/${marker}`)).mode & 0o777).toString(8), '700', attack.name);
      continue;
    }
    assert.equal(pull.code, 1, `${attack.name} was pulled`);
    assert.match(pull.stderr, /code = InvalidArgument desc = refusing layer: /, attack.name);
    const escaped = attack.escaped(marker, berthd);
    if (escaped) assert.equal(existsSync(escaped), false, `${attack.name} wrote ${escaped}`);
    const status = await imageClient(t, berthd).imageStatus({ image: { image: `${registry.host}/hostile/${i}` } });
    assert.equal(status.image, undefined, `${attack.name} left an image record`);
  }
  const snapshots = await readdir(join(berthd.dir, 'root', 'snapshots'));
  assert.ok(snapshots.every((n) => !n.startsWith('.unpack-')), `unpack temp dirs left: ${snapshots}`);
  const passwdAfter = await stat('/etc/passwd');
  assert.deepEqual([passwdAfter.nlink, passwdAfter.mtimeMs], [passwdBefore.nlink, passwdBefore.mtimeMs]);
});

test('a registry killed mid-pull leaves no image and no visible partial blob; the next pull succeeds', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t);
  // 64 MiB of random bytes cannot be compressed away, so the transfer takes a while.
  const big = buildLayer([{ type: 'file', path: 'big.bin', content: randomBytes(64 * 1024 * 1024) }], 'none');
  const reference = `${registry.host}/test/big:1`;
  await pushImage(registry, 'test/big', '1', { layers: [buildLayer(busyboxEntries()), big] });

  const pulling = berthd.ctl(['--timeout', '60s', 'pull', reference]);
  const ingest = join(berthd.dir, 'root', 'content', 'ingest');
  const partial = join(ingest, `${big.digest.replace('sha256:', '')}.partial`);
  for (let i = 0; i < 400 && !((await stat(partial).catch(() => undefined))?.size ?? 0); i++) await sleep(25);
  assert.ok(existsSync(partial), 'the big blob started downloading');
  await registry.kill();
  const failed = await pulling;
  assert.equal(failed.code, 1, 'the pull failed when the registry died');
  assert.match(failed.stderr, /code = Unavailable/);
  const images = imageClient(t, berthd);
  assert.equal((await images.imageStatus({ image: { image: reference } })).image, undefined);
  const blobs = await readdir(join(berthd.dir, 'root', 'content', 'blobs', 'sha256'));
  assert.ok(!blobs.includes(big.digest.replace('sha256:', '')), 'no partial blob among the blobs');

  await registry.restart();
  const again = await berthd.ctl(['pull', reference]);
  assert.equal(again.code, 0, again.stderr + berthd.logs().slice(-4000));
  assert.ok((await images.imageStatus({ image: { image: reference } })).image);
  assert.deepEqual(await readdir(ingest), [], 'nothing left in the ingest dir');
});

test('a pull that makes no progress is cancelled after image_pull_progress_timeout', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t, { extraToml: 'image_pull_progress_timeout = "2s"' });
  await pushImage(registry, 'test/stall', '1', { layers: [buildLayer(busyboxEntries())] });
  registry.signal('SIGSTOP');
  cleanup(t).after(() => registry.signal('SIGCONT'));
  const started = Date.now();
  const pull = await berthd.ctl(['--timeout', '60s', 'pull', `${registry.host}/test/stall:1`]);
  const elapsed = Date.now() - started;
  assert.equal(pull.code, 1);
  assert.match(pull.stderr, /no progress for 2s/);
  assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
});

test('status, list, remove and imagefsinfo; tags move; removal frees content', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const berthd = await startBerthd(t, { extraToml: 'pinned_images = ["PLACEHOLDER"]'.replace('PLACEHOLDER', '127.0.0.1:1/never:1') });
  const images = imageClient(t, berthd);
  const base = buildLayer(busyboxEntries());
  const v1 = await pushImage(registry, 'test/app', 'stable', { layers: [base, buildLayer([{ type: 'file', path: 'v', content: '1' }])] });
  const ref = `${registry.host}/test/app:stable`;
  assert.equal((await berthd.ctl(['pull', ref])).code, 0);
  const fsBefore = JSON.parse((await berthd.ctl(['imagefsinfo'])).stdout) as { status: { imageFilesystems: Array<{ usedBytes: { value: string }; inodesUsed: { value: string } }> } };
  const usedBytes = Number(fsBefore.status.imageFilesystems[0]!.usedBytes.value);
  assert.ok(usedBytes > 1_000_000, `image fs counts busybox (${usedBytes} bytes)`);

  // Every name finds it: id, short id, tag, digest reference.
  for (const name of [v1.configDigest, v1.configDigest.slice(7), v1.configDigest.slice(7, 19), ref, `${registry.host}/test/app@${v1.manifestDigest}`]) {
    const s = await images.imageStatus({ image: { image: name } });
    assert.equal(s.image?.id, v1.configDigest, name);
  }
  assert.equal((await images.imageStatus({ image: { image: `${registry.host}/test/app:other` } })).image, undefined);
  await assert.rejects(images.pullImage({ image: { image: 'UPPER/Case' } }), { code: GrpcStatus.INVALID_ARGUMENT });

  // The tag moves to a new image; the old one keeps its digest name.
  const v2 = await pushImage(registry, 'test/app', 'stable', { layers: [base, buildLayer([{ type: 'file', path: 'v', content: '2' }])] });
  assert.equal((await berthd.ctl(['pull', ref])).code, 0);
  const old = await images.imageStatus({ image: { image: v1.configDigest } });
  assert.deepEqual(old.image?.repoTags, []);
  assert.equal((await images.imageStatus({ image: { image: ref } })).image?.id, v2.configDigest);
  const table = (await berthd.ctl(['images'])).stdout;
  assert.match(table, new RegExp(`^${registry.host}/test/app\\s+stable\\s+${v2.configDigest.slice(7, 20)}\\s+\\S+`, 'm'));
  assert.match(table, new RegExp(`^${registry.host}/test/app\\s+<none>\\s+${v1.configDigest.slice(7, 20)}`, 'm'));
  const filtered = await images.listImages({ filter: { image: { image: ref } } });
  assert.deepEqual(filtered.images.map((i) => i.id), [v2.configDigest]);

  // Removing frees blobs and snapshots nothing else uses; the shared base stays.
  assert.equal((await berthd.ctl(['rmi', v1.configDigest])).code, 0);
  const blobs = await readdir(join(berthd.dir, 'root', 'content', 'blobs', 'sha256'));
  assert.ok(!blobs.includes(v1.configDigest.slice(7)), 'config blob removed');
  assert.ok(!blobs.includes(v1.layers[1]!.digest.slice(7)), 'its own layer removed');
  assert.ok(blobs.includes(base.digest.slice(7)), 'the shared layer stays');
  await images.removeImage({ image: { image: v1.configDigest } }); // idempotent
  const rmi = await berthd.ctl(['rmi', '--all']);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.match(rmi.stdout, new RegExp(`Deleted: ${ref.replace(/[.]/g, '\\.')}`));
  assert.deepEqual((await images.listImages({})).images, []);
  assert.deepEqual(await readdir(join(berthd.dir, 'root', 'snapshots')), []);
  assert.deepEqual(await readdir(join(berthd.dir, 'root', 'content', 'blobs', 'sha256')), []);
});

test('concurrent pulls of one image download each blob once', { skip }, async (t) => {
  const registry = await startRegistry(t, { accessLog: true });
  const berthd = await startBerthd(t);
  const layer = buildLayer([...busyboxEntries(), { type: 'file', path: 'pad', content: randomBytes(4 * 1024 * 1024) }]);
  await pushImage(registry, 'test/shared', '1', { layers: [layer] });
  const ref = `${registry.host}/test/shared:1`;
  const images = imageClient(t, berthd);
  const results = await Promise.all([1, 2, 3].map(() => images.pullImage({ image: { image: ref } })));
  assert.equal(new Set(results.map((r) => r.imageRef)).size, 1);
  const fetches = registry.logs().split('\n').filter((l) => l.includes(`GET /v2/test/shared/blobs/${layer.digest}`));
  assert.equal(fetches.length, 1, `layer fetched ${fetches.length} times`);
});

test('pinned images report pinned; unreferenced content is collected at start-up', { skip }, async (t) => {
  const registry = await startRegistry(t);
  const pinnedRef = `${registry.host}/test/pause:3`;
  const berthd = await startBerthd(t, { extraToml: `pinned_images = ["${pinnedRef}"]` });
  await pushImage(registry, 'test/pause', '3', { layers: [buildLayer(busyboxEntries())] });
  await pushImage(registry, 'test/other', '1', { layers: [buildLayer(busyboxEntries())], config: { Cmd: ['other'] } });
  assert.equal((await berthd.ctl(['pull', pinnedRef])).code, 0);
  assert.equal((await berthd.ctl(['pull', `${registry.host}/test/other:1`])).code, 0);
  const images = imageClient(t, berthd);
  assert.equal((await images.imageStatus({ image: { image: pinnedRef } })).image?.pinned, true);
  assert.equal((await images.imageStatus({ image: { image: `${registry.host}/test/other:1` } })).image?.pinned, false);
  const prune = await berthd.ctl(['rmi', '--all']);
  assert.equal(prune.code, 0);
  assert.ok((await images.imageStatus({ image: { image: pinnedRef } })).image, 'rmi --all keeps the pinned image');

  // Orphans as a crash leaves them: a blob, a snapshot, a half unpack, a partial download.
  const root = join(berthd.dir, 'root');
  const orphanBlob = join(root, 'content', 'blobs', 'sha256', 'ab'.repeat(32));
  const orphanSnapshot = join(root, 'snapshots', 'cd'.repeat(32));
  const halfUnpack = join(root, 'snapshots', '.unpack-123456');
  const partial = join(root, 'content', 'ingest', `${'ef'.repeat(32)}.partial`);
  await writeFile(orphanBlob, 'orphan');
  await mkdir(orphanSnapshot);
  await mkdir(halfUnpack);
  await writeFile(partial, 'part');
  await berthd.stop('SIGKILL');
  const restarted = await startBerthdOn(t, berthd);
  assert.ok(!existsSync(orphanBlob) && !existsSync(orphanSnapshot) && !existsSync(halfUnpack) && !existsSync(partial), restarted.logs());
  const again = serviceClient(ImageService, openChannel(restarted.endpoint));
  cleanup(t).after(() => again.close());
  assert.equal((await again.imageStatus({ image: { image: pinnedRef } })).image?.pinned, true, 'the image survived the restart');
});

async function startBerthdOn(t: { after(fn: () => unknown): void }, previous: TestBerthd): Promise<TestBerthd> {
  const { launchBerthd } = await import('./helpers/berthd.js');
  return launchBerthd(t, previous.dir, previous.configPath, previous.socket);
}

test('bearer-token auth, as Docker Hub uses it: anonymous tokens, and tokens for credentials', { skip }, async (t) => {
  const tokens = await startTokenService(t);
  const registry = await startRegistry(t, { token: tokens });
  const berthd = await startBerthd(t);
  const push = { bearer: tokens.issue('repository:public/app:push,pull') };
  const pushed = await pushImage(registry, 'public/app', '1', { layers: [buildLayer(busyboxEntries())], auth: push });
  const pull = await berthd.ctl(['pull', `${registry.host}/public/app:1`]);
  assert.equal(pull.code, 0, pull.stderr + berthd.logs().slice(-2000));
  assert.match(pull.stdout, new RegExp(pushed.configDigest));
  assert.ok(tokens.requests.some((r) => r === '- repository:public/app:pull'), `an anonymous pull token was asked for: ${tokens.requests}`);

  // A token service that wants credentials: refused without, served with them.
  const strict = await startTokenService(t, { users: { alice: 'wonderland' } });
  const privateRegistry = await startRegistry(t, { token: strict });
  await pushImage(privateRegistry, 'private/app', '1', { layers: [buildLayer(busyboxEntries())], auth: { bearer: strict.issue('repository:private/app:push,pull') } });
  const refused = await berthd.ctl(['pull', `${privateRegistry.host}/private/app:1`]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /code = Unauthenticated desc = registry token service .* refused the credentials/);
  const allowed = await berthd.ctl(['pull', '--creds', 'alice:wonderland', `${privateRegistry.host}/private/app:1`]);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.ok(strict.requests.includes('alice repository:private/app:pull'), `${strict.requests}`);
});

test('a partial download that already holds the whole blob (a pull that died before committing it) is fetched again and verified, not asked for a range past its end', { skip }, async (t) => {
  const registry = await startRegistry(t, { accessLog: true });
  const berthd = await startBerthd(t);
  const layer = buildLayer(busyboxEntries());
  const reference = `${registry.host}/test/whole-partial:1`;
  await pushImage(registry, 'test/whole-partial', '1', { layers: [layer] });
  const ingest = join(berthd.dir, 'root', 'content', 'ingest');
  await mkdir(ingest, { recursive: true });
  await writeFile(join(ingest, `${layer.digest.replace('sha256:', '')}.partial`), layer.blob);
  const pulled = await berthd.ctl(['pull', reference]);
  assert.equal(pulled.code, 0, pulled.stderr + berthd.logs().slice(-3000));
  assert.match(registry.logs(), /416|Range Not Satisfiable/, 'the registry was asked for a range past the end first');
  assert.deepEqual(await readdir(ingest), [], 'nothing left in the ingest dir');
});
