// Proves the image test helpers: the tar writer against GNU tar, and pushes against
// Debian's docker-registry read back over plain HTTP, as the image puller will.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { isRoot } from './helpers/paths.js';
import { DOCKER_REGISTRY, startRegistry, type TestRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import {
  ACCEPT_ANY_MANIFEST,
  BUSYBOX,
  MEDIA_TYPES,
  authHeader,
  buildLayer,
  busyboxEntries,
  hostArchitecture,
  pushBlob,
  pushImage,
  pushIndex,
  sha256,
  type BuiltLayer,
  type Compression,
  type LayerEntry,
  type RegistryAuth,
} from './helpers/image-builder.js';

const registrySkip = !isRoot
  ? 'docker-registry tests run as root'
  : !existsSync(DOCKER_REGISTRY)
    ? `${DOCKER_REGISTRY} is missing (Debian package docker-registry)`
    : !existsSync(BUSYBOX)
      ? `${BUSYBOX} is missing (Debian package busybox-static)`
      : false;
const tarSkip = !existsSync('/usr/bin/tar') ? 'GNU tar is missing' : !existsSync('/usr/bin/zstd') ? 'zstd is missing (Debian package zstd)' : false;

const LONG = `deep/${'a'.repeat(60)}/${'b'.repeat(60)}/long-file-name.txt`;

/** Everything an unpacker has to cope with, hostile names included. */
const HOSTILE: LayerEntry[] = [
  { type: 'dir', path: 'dir/', mode: 0o750, uid: 1000, gid: 1000 },
  { type: 'file', path: 'dir/f', content: 'hello', mode: 0o640, uid: 1000, gid: 2000, xattrs: { 'user.berth': 'yes', 'security.capability': 'x' } },
  { type: 'file', path: '../x', content: 'x' },
  { type: 'file', path: '../../escape.txt', content: 'escape' },
  { type: 'file', path: '/etc/evil', content: 'evil' },
  { type: 'symlink', path: 'link', target: '/etc' },
  { type: 'file', path: 'link/evil', content: 'evil' },
  { type: 'hardlink', path: 'hard', target: '../outside' },
  { type: 'char', path: 'dev/null', major: 1, minor: 3 },
  { type: 'block', path: 'dev/sda', major: 8, minor: 0, mode: 0o660 },
  { type: 'fifo', path: 'fifo' },
  { type: 'file', path: LONG, content: 'long' },
  { type: 'symlink', path: 'to-long', target: LONG },
  { type: 'file', path: '.wh.gone', content: '' },
  { type: 'file', path: 'dir/.wh..wh..opq', content: '' },
];

/**
 * Runs a program without stdin. (processes.run writes to the child's stdin, which can
 * fail with EPIPE when a program such as tar -f exits before reading it.)
 */
function exec(command: string, args: string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { env, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr: stderr || (err?.message ?? '') });
    });
    child.stdin?.destroy();
  });
}

function decompress(layer: BuiltLayer): Buffer {
  if (layer.compression === 'gzip') return gunzipSync(layer.blob);
  if (layer.compression === 'zstd') return execFileSync('zstd', ['-d', '-q', '-c'], { input: layer.blob, maxBuffer: 1 << 30 });
  return layer.blob;
}

/** Offset of a 512-byte header whose name field is exactly `name`, or -1. */
function headerOffset(tar: Buffer, name: string): number {
  const needle = Buffer.concat([Buffer.from(name), Buffer.alloc(1)]);
  for (let at = tar.indexOf(needle); at !== -1; at = tar.indexOf(needle, at + 1)) if (at % 512 === 0) return at;
  return -1;
}

test('buildLayer writes every entry type byte-exactly, as GNU tar lists it', { skip: tarSkip }, async (t) => {
  const dir = await tempDir(t, 'image-builder-');
  const cases: Array<[Compression, 'pax' | 'ustar' | 'gnu']> = [
    ['none', 'pax'],
    ['gzip', 'ustar'],
    ['zstd', 'gnu'],
  ];
  for (const [compression, longNames] of cases) {
    const layer = buildLayer(HOSTILE, compression, 'oci', { longNames });
    const tar = decompress(layer);
    assert.deepEqual(tar, layer.tar, `${compression} decompresses to the tar`);
    assert.equal(layer.digest, sha256(layer.blob));
    assert.equal(layer.diffId, sha256(tar));
    assert.equal(layer.size, layer.blob.length);
    assert.equal(layer.mediaType, { none: MEDIA_TYPES.ociLayer, gzip: MEDIA_TYPES.ociLayerGzip, zstd: MEDIA_TYPES.ociLayerZstd }[compression]);
    assert.equal(tar.length % 512, 0);

    // Hostile names sit unchanged in the name field of their own header.
    for (const name of ['../x', '../../escape.txt', '/etc/evil', 'link/evil']) assert.notEqual(headerOffset(tar, name), -1, `${name} written as is`);
    const hard = headerOffset(tar, 'hard');
    assert.equal(tar.subarray(hard + 156, hard + 157).toString(), '1');
    assert.equal(tar.subarray(hard + 157, hard + 157 + 11).toString(), '../outside\0');
    // Long names in the requested encoding.
    if (longNames === 'pax') assert.ok(tar.includes(`path=${LONG}\n`));
    if (longNames === 'ustar') assert.notEqual(headerOffset(tar, 'long-file-name.txt'), -1, 'the name part of a ustar prefix split');
    if (longNames === 'gnu') assert.notEqual(headerOffset(tar, '././@LongLink'), -1);
    assert.ok(tar.includes('SCHILY.xattr.user.berth=yes\n'));

    const file = join(dir, `layer-${compression}.tar`);
    await writeFile(file, tar);
    // -P: GNU tar would strip the leading '/' from /etc/evil in its listing otherwise.
    const listed = await exec('tar', ['--xattrs', '--xattrs-include=*', '-tvvPf', file], { PATH: process.env.PATH, LC_ALL: 'C', TZ: 'UTC' });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stderr, '', 'GNU tar has no complaint (checksums, pax records)');
    const lines = listed.stdout.trimEnd().split('\n');
    const expected: Array<[string, RegExp]> = [
      ['dir/', /^drwxr-x--- +1000\/1000 .* dir\/$/],
      ['dir/f', /^-rw-r-----\* 1000\/2000 +5 2024-01-01 00:00 dir\/f$/],
      ['../x', /^-rw-r--r-- +0\/0 +1 .* \.\.\/x$/],
      ['../../escape.txt', / \.\.\/\.\.\/escape\.txt$/],
      ['/etc/evil', / \/etc\/evil$/],
      ['link', /^lrwxrwxrwx .* link -> \/etc$/],
      ['link/evil', / link\/evil$/],
      ['hard', /^h.* hard link to \.\.\/outside$/],
      ['dev/null', /^crw-rw-rw- .* 1,3 .* dev\/null$/],
      ['dev/sda', /^brw-rw---- .* 8,0 .* dev\/sda$/],
      ['fifo', /^prw-r--r-- .* fifo$/],
      [LONG, new RegExp(` ${LONG}$`)],
      ['to-long', new RegExp(` to-long -> ${LONG}$`)],
      ['.wh.gone', / \.wh\.gone$/],
      ['dir/.wh..wh..opq', / dir\/\.wh\.\.wh\.\.opq$/],
    ];
    const entryLines = lines.filter((l) => !l.startsWith('  '));
    assert.equal(entryLines.length, expected.length, listed.stdout);
    expected.forEach(([name, pattern], i) => assert.match(entryLines[i]!, pattern, `${compression}/${longNames}: ${name}`));
    assert.ok(lines.includes('  x: 3 user.berth') && lines.includes('  x: 1 security.capability'), listed.stdout);
  }
  // Same entries, same bytes: digests are stable across builds.
  assert.equal(buildLayer(HOSTILE, 'gzip').digest, buildLayer(HOSTILE, 'gzip').digest);
});

const busyboxLayers: Partial<Record<string, BuiltLayer>> = {};
function busyboxLayer(compression: Compression, format: 'oci' | 'docker'): BuiltLayer {
  return (busyboxLayers[`${compression}/${format}`] ??= buildLayer(busyboxEntries(), compression, format));
}

test('the busybox layer is a usable root: users, groups, modes, applets', { skip: registrySkip }, async (t) => {
  const dir = await tempDir(t, 'busybox-root-');
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs);
  const layer = busyboxLayer('gzip', 'oci');
  await writeFile(join(dir, 'layer.tar.gz'), layer.blob);
  const untar = await exec('tar', ['-xzpf', join(dir, 'layer.tar.gz'), '-C', rootfs]);
  assert.equal(untar.code, 0, untar.stderr);
  const script = 'id app; id -u nobody; stat -c "%a %u:%g %n" /tmp /home/app /root; readlink /bin/sh; echo ok';
  const out = await exec('/usr/sbin/chroot', [rootfs, '/bin/sh', '-c', script], { PATH: '/bin' });
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(out.stdout.trimEnd().split('\n'), [
    'uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)',
    '65534',
    '1777 0:0 /tmp',
    '755 1000:1000 /home/app',
    '700 0:0 /root',
    'busybox',
    'ok',
  ]);
});

interface Fetched {
  status: number;
  contentType: string | null;
  digest: string | null;
  body: Buffer;
}

async function get(registry: TestRegistry, path: string, accept?: string, auth?: RegistryAuth): Promise<Fetched> {
  const res = await fetch(`${registry.url}/v2/${path}`, { headers: { ...authHeader(auth), ...(accept ? { Accept: accept } : {}) } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, contentType: res.headers.get('content-type'), digest: res.headers.get('docker-content-digest'), body };
}

/** The manifest, config and every layer come back byte-identical under their digests. */
async function assertRoundTrip(registry: TestRegistry, repo: string, ref: string, accept: string, image: Awaited<ReturnType<typeof pushImage>>) {
  const manifest = await get(registry, `${repo}/manifests/${ref}`, accept);
  assert.equal(manifest.status, 200, manifest.body.toString());
  assert.equal(manifest.contentType, image.mediaType);
  assert.equal(manifest.digest, image.manifestDigest);
  assert.equal(sha256(manifest.body), image.manifestDigest);
  assert.deepEqual(manifest.body, image.manifest);
  const parsed = JSON.parse(manifest.body.toString());
  assert.equal(parsed.schemaVersion, 2);
  assert.equal(parsed.mediaType, image.mediaType);
  assert.equal(parsed.config.digest, image.configDigest);
  assert.deepEqual(
    parsed.layers.map((l: { mediaType: string; digest: string; size: number }) => [l.mediaType, l.digest, l.size]),
    image.layers.map((l) => [l.mediaType, l.digest, l.size]),
  );
  const config = await get(registry, `${repo}/blobs/${image.configDigest}`);
  assert.equal(config.status, 200);
  assert.equal(sha256(config.body), image.configDigest);
  for (const layer of image.layers) {
    const blob = await get(registry, `${repo}/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    assert.equal(blob.digest, layer.digest);
    assert.equal(sha256(blob.body), layer.digest);
  }
  return { manifest: parsed, config: JSON.parse(config.body.toString()) };
}

test('an OCI image with a gzip and a zstd layer round-trips through docker-registry', { skip: registrySkip }, async (t) => {
  const registry = await startRegistry(t);
  assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
  const base = busyboxLayer('gzip', 'oci');
  const extra = buildLayer([{ type: 'dir', path: 'srv/' }, { type: 'file', path: 'srv/motd', content: 'hello from zstd\n' }], 'zstd');
  const image = await pushImage(registry, 'test/busybox', 'latest', {
    layers: [base, extra],
    config: { Entrypoint: ['/bin/sh', '-c'], Cmd: ['cat /srv/motd'], User: 'app', WorkingDir: '/home/app', Labels: { a: 'b' }, StopSignal: 'SIGINT' },
  });
  assert.equal(image.mediaType, MEDIA_TYPES.ociManifest);
  const { manifest, config } = await assertRoundTrip(registry, 'test/busybox', 'latest', MEDIA_TYPES.ociManifest, image);
  assert.equal(manifest.config.mediaType, MEDIA_TYPES.ociConfig);
  assert.deepEqual(manifest.layers.map((l: { mediaType: string }) => l.mediaType), [MEDIA_TYPES.ociLayerGzip, MEDIA_TYPES.ociLayerZstd]);
  assert.equal(config.architecture, hostArchitecture());
  assert.equal(config.os, 'linux');
  assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: [base.diffId, extra.diffId] });
  assert.equal(config.history.length, 2);
  assert.deepEqual(config.config.Entrypoint, ['/bin/sh', '-c']);
  assert.equal(config.config.User, 'app');
  assert.equal(config.config.StopSignal, 'SIGINT');
  assert.match(config.config.Env[0], /^PATH=/);

  // By digest too, and HEAD answers with the digest and size.
  const byDigest = await get(registry, `test/busybox/manifests/${image.manifestDigest}`, MEDIA_TYPES.ociManifest);
  assert.deepEqual(byDigest.body, image.manifest);
  const head = await fetch(`${registry.url}/v2/test/busybox/manifests/latest`, { method: 'HEAD', headers: { Accept: MEDIA_TYPES.ociManifest } });
  assert.equal(head.headers.get('docker-content-digest'), image.manifestDigest);
  assert.equal(head.headers.get('content-length'), String(image.manifestSize));
  // distribution 2.8 hides an OCI manifest from a client whose Accept lacks its type.
  const noAccept = await get(registry, 'test/busybox/manifests/latest');
  assert.equal(noAccept.status, 404);
  assert.match(noAccept.body.toString(), /MANIFEST_UNKNOWN/);
});

test('a Docker schema 2 image round-trips through docker-registry', { skip: registrySkip }, async (t) => {
  const registry = await startRegistry(t);
  const layer = busyboxLayer('gzip', 'docker');
  assert.equal(layer.mediaType, MEDIA_TYPES.dockerLayerGzip);
  const image = await pushImage(registry, 'library/busybox', '1.35', { layers: [layer], format: 'docker', config: { Cmd: ['sh'] } });
  assert.equal(image.mediaType, MEDIA_TYPES.dockerManifest);
  const { manifest, config } = await assertRoundTrip(registry, 'library/busybox', '1.35', MEDIA_TYPES.dockerManifest, image);
  assert.equal(manifest.config.mediaType, MEDIA_TYPES.dockerConfig);
  assert.deepEqual(config.rootfs.diff_ids, [layer.diffId]);
  assert.deepEqual(config.config.Cmd, ['sh']);
});

test('multi-arch OCI index and Docker manifest list', { skip: registrySkip }, async (t) => {
  const registry = await startRegistry(t);
  for (const format of ['oci', 'docker'] as const) {
    const repo = `test/multi-${format}`;
    const layer = busyboxLayer('gzip', format);
    const amd64 = await pushImage(registry, repo, undefined, { layers: [layer], architecture: 'amd64', format });
    const arm64 = await pushImage(registry, repo, undefined, { layers: [layer], architecture: 'arm64', variant: 'v8', format });
    assert.notEqual(amd64.manifestDigest, arm64.manifestDigest);
    const index = await pushIndex(registry, repo, 'latest', [
      { image: amd64, platform: { architecture: 'amd64', os: 'linux' } },
      { image: arm64, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
    ], format);
    const mediaType = format === 'oci' ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList;
    assert.equal(index.mediaType, mediaType);

    const got = await get(registry, `${repo}/manifests/latest`, ACCEPT_ANY_MANIFEST);
    assert.equal(got.status, 200, got.body.toString());
    assert.equal(got.contentType, mediaType);
    assert.equal(got.digest, index.digest);
    assert.equal(sha256(got.body), index.digest);
    assert.equal(got.body.length, index.size);
    const parsed = JSON.parse(got.body.toString());
    assert.deepEqual(
      parsed.manifests.map((m: { mediaType: string; digest: string; size: number; platform: object }) => [m.mediaType, m.digest, m.size, m.platform]),
      [
        [amd64.mediaType, amd64.manifestDigest, amd64.manifestSize, { architecture: 'amd64', os: 'linux' }],
        [arm64.mediaType, arm64.manifestDigest, arm64.manifestSize, { architecture: 'arm64', os: 'linux', variant: 'v8' }],
      ],
    );
    const armConfig = JSON.parse((await get(registry, `${repo}/blobs/${arm64.configDigest}`)).body.toString());
    assert.equal(armConfig.architecture, 'arm64');
    assert.equal(armConfig.variant, 'v8');
    await assertRoundTrip(registry, repo, arm64.manifestDigest, ACCEPT_ANY_MANIFEST, arm64);
  }
});

test('htpasswd basic auth over plain http on 127.0.0.1', { skip: registrySkip }, async (t) => {
  const auth = { user: 'puller', password: 's3cret pass' };
  const registry = await startRegistry(t, { htpasswd: auth });
  const anonymous = await get(registry, '');
  assert.equal(anonymous.status, 401);
  const challenge = await fetch(`${registry.url}/v2/`);
  assert.match(challenge.headers.get('www-authenticate') ?? '', /^Basic realm="/);
  await challenge.arrayBuffer();
  assert.equal((await get(registry, '', undefined, auth)).status, 200);
  assert.equal((await get(registry, '', undefined, { ...auth, password: 'wrong' })).status, 401);

  const layer = buildLayer([{ type: 'file', path: 'hello', content: 'hi' }]);
  await assert.rejects(pushImage(registry, 'private/img', 'v1', { layers: [layer] }), /HTTP 401/);
  const image = await pushImage(registry, 'private/img', 'v1', { layers: [layer], auth });
  assert.equal((await get(registry, 'private/img/manifests/v1', MEDIA_TYPES.ociManifest)).status, 401);
  const withAuth = await get(registry, 'private/img/manifests/v1', MEDIA_TYPES.ociManifest, auth);
  assert.equal(withAuth.status, 200);
  assert.equal(withAuth.digest, image.manifestDigest);
});

test('kill and restart keep pushed images and a half-done upload', { skip: registrySkip }, async (t) => {
  const registry = await startRegistry(t);
  const image = await pushImage(registry, 'test/durable', 'latest', { layers: [buildLayer([{ type: 'file', path: 'a', content: 'a' }])] });

  // Half a blob by chunked upload (PATCH), then SIGKILL.
  const data = Buffer.alloc(256 * 1024, 7);
  const start = await fetch(`${registry.url}/v2/test/durable/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202);
  await start.arrayBuffer();
  const half = data.length / 2;
  const patch = await fetch(new URL(start.headers.get('location')!, registry.url), {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${half - 1}` },
    body: data.subarray(0, half),
  });
  assert.equal(patch.status, 202);
  await patch.arrayBuffer();
  const location = new URL(patch.headers.get('location')!, registry.url);

  await registry.kill();
  await assert.rejects(fetch(`${registry.url}/v2/`), 'nothing answers after kill');
  await registry.restart();

  const manifest = await get(registry, 'test/durable/manifests/latest', MEDIA_TYPES.ociManifest);
  assert.equal(manifest.status, 200);
  assert.equal(manifest.digest, image.manifestDigest);
  // The upload resumes where it stopped, because the helper pins http.secret.
  const status = await fetch(location);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), `0-${half - 1}`);
  await status.arrayBuffer();
  location.searchParams.set('digest', sha256(data));
  const finish = await fetch(location, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: data.subarray(half) });
  assert.equal(finish.status, 201, await finish.text());
  const blob = await get(registry, `test/durable/blobs/${sha256(data)}`);
  assert.deepEqual(blob.body, data);
  // pushBlob finds it there and does not upload again.
  assert.equal(await pushBlob(registry, 'test/durable', data), sha256(data));
});
