// Offline images: `berthctl image import` of OCI layouts and `docker save` archives, and
// `image export`, read back by berthd and by containerd's own importer (ctr).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBerthd } from './helpers/berthd.js';
import { startContainerd } from './helpers/containerd.js';
import { buildLayer, buildTar, busyboxEntries, imageConfig, sha256, MEDIA_TYPES, type LayerEntry } from './helpers/image-builder.js';
import { isRoot } from './helpers/paths.js';
import { run } from './helpers/processes.js';
import { tempDir } from './helpers/tmp.js';

const skip = isRoot ? false : 'needs root (unpacking with ownership)';

/** An OCI image layout archive holding one image named `name`. */
function ociLayout(name: string, layers = [buildLayer(busyboxEntries())], cmd = ['sh']): { archive: Buffer; configDigest: string; manifestDigest: string } {
  const config = imageConfig({ layers, config: { Cmd: cmd } });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const index = {
    schemaVersion: 2,
    manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: sha256(manifest), size: manifest.length, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() } }],
  };
  const blob = (data: Buffer): LayerEntry => ({ type: 'file', path: `blobs/sha256/${sha256(data).slice(7)}`, content: data });
  const archive = buildTar([
    { type: 'file', path: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { type: 'file', path: 'index.json', content: JSON.stringify(index) },
    { type: 'dir', path: 'blobs/' },
    { type: 'dir', path: 'blobs/sha256/' },
    blob(manifest),
    blob(config),
    ...layers.map((l) => blob(l.blob)),
  ]);
  return { archive, configDigest: sha256(config), manifestDigest: sha256(manifest) };
}

test('image import reads an OCI layout and a legacy docker save archive', { skip }, async (t) => {
  const berthd = await startBerthd(t);
  const dir = await tempDir(t);

  const oci = ociLayout('example.com/tools/busybox:1.0');
  await writeFile(join(dir, 'oci.tar'), oci.archive);
  const imported = await berthd.ctl(['image', 'import', join(dir, 'oci.tar')]);
  assert.equal(imported.code, 0, imported.stderr);
  assert.equal(imported.stdout, `Imported ${oci.configDigest} as example.com/tools/busybox:1.0\n`);
  const status = JSON.parse((await berthd.ctl(['inspecti', 'example.com/tools/busybox:1.0'])).stdout) as { status: { id: string; repoDigests: string[] } };
  assert.equal(status.status.id, oci.configDigest);
  assert.deepEqual(status.status.repoDigests, [`example.com/tools/busybox@${oci.manifestDigest}`]);

  // docker save before Docker 25: <id>.json config, <dir>/layer.tar layers, manifest.json.
  const layer = buildLayer([...busyboxEntries(), { type: 'file', path: 'etc/legacy', content: 'yes\n' }], 'none', 'docker');
  const config = imageConfig({ layers: [layer], config: { Cmd: ['legacy'] } });
  const legacy = buildTar([
    { type: 'file', path: `${sha256(config).slice(7)}.json`, content: config },
    { type: 'dir', path: 'abc123/' },
    { type: 'file', path: 'abc123/layer.tar', content: layer.tar },
    { type: 'file', path: 'abc123/VERSION', content: '1.0' },
    { type: 'file', path: 'manifest.json', content: JSON.stringify([{ Config: `${sha256(config).slice(7)}.json`, RepoTags: ['busybox:legacy'], Layers: ['abc123/layer.tar'] }]) },
    { type: 'file', path: 'repositories', content: '{}' },
  ]);
  await writeFile(join(dir, 'legacy.tar'), legacy);
  const legacyImport = await berthd.ctl(['image', 'import', join(dir, 'legacy.tar')]);
  assert.equal(legacyImport.code, 0, legacyImport.stderr);
  assert.equal(legacyImport.stdout, `Imported ${sha256(config)} as docker.io/library/busybox:legacy\n`);

  // --name gives a nameless or renamed image its names.
  const renamed = await berthd.ctl(['image', 'import', '--name', 'local/renamed:v2', join(dir, 'oci.tar')]);
  assert.equal(renamed.code, 0, renamed.stderr);
  const tags = JSON.parse((await berthd.ctl(['inspecti', oci.configDigest])).stdout).status.repoTags as string[];
  assert.deepEqual(tags.sort(), ['docker.io/local/renamed:v2', 'example.com/tools/busybox:1.0']);
});

test('a corrupt archive is refused and leaves no image', { skip }, async (t) => {
  const berthd = await startBerthd(t);
  const dir = await tempDir(t);
  const layer = buildLayer(busyboxEntries());
  const oci = ociLayout('example.com/corrupt:1', [layer]);
  // Flip a byte inside the layer blob: its digest no longer matches its name.
  const corrupt = Buffer.from(oci.archive);
  const at = corrupt.indexOf(layer.blob.subarray(0, 512));
  assert.ok(at > 0, 'the layer blob is in the archive');
  corrupt[at + 1000] ^= 0xff;
  await writeFile(join(dir, 'corrupt.tar'), corrupt);
  const result = await berthd.ctl(['image', 'import', join(dir, 'corrupt.tar')]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /code = DataLoss desc = content digest mismatch/);
  assert.equal((await berthd.ctl(['images', '-q'])).stdout, '');

  await writeFile(join(dir, 'empty.tar'), buildTar([{ type: 'file', path: 'readme', content: 'no image here' }]));
  const empty = await berthd.ctl(['image', 'import', join(dir, 'empty.tar')]);
  assert.match(empty.stderr, /holds no image/);
  const missing = await berthd.ctl(['image', 'import', join(dir, 'absent.tar')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /absent\.tar/);
});

test('image export is read back by berthd and by containerd (ctr import)', { skip: skip || (!existsSync('/usr/bin/ctr') && 'ctr is not installed') }, async (t) => {
  const source = await startBerthd(t);
  const dir = await tempDir(t);
  const oci = ociLayout('example.com/export/me:3', [buildLayer(busyboxEntries(), 'gzip'), buildLayer([{ type: 'file', path: 'extra', content: 'x' }], 'zstd')]);
  await writeFile(join(dir, 'in.tar'), oci.archive);
  assert.equal((await source.ctl(['image', 'import', join(dir, 'in.tar')])).code, 0);
  const exported = await source.ctl(['image', 'export', 'example.com/export/me:3', '-f', join(dir, 'out.tar')]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /Exported 1 image\(s\)/);
  const listing = await run('tar', ['-tf', join(dir, 'out.tar')]);
  assert.match(listing.stdout, /^oci-layout$/m);
  assert.match(listing.stdout, /^index\.json$/m);
  assert.match(listing.stdout, /^manifest\.json$/m);
  assert.ok(!(await readdir(dir)).some((n) => n.endsWith('.partial')), 'no temp file left');

  const target = await startBerthd(t);
  const again = await target.ctl(['image', 'import', join(dir, 'out.tar')]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, `Imported ${oci.configDigest} as example.com/export/me:3\n`);

  const containerd = await startContainerd(t);
  const ctr = await run('ctr', ['--address', containerd.socket, '-n', 'k8s.io', 'images', 'import', join(dir, 'out.tar')]);
  assert.equal(ctr.code, 0, ctr.stderr);
  const images = JSON.parse((await target.ctl(['-r', containerd.endpoint, 'images', '-o', 'json'])).stdout) as { images: Array<{ id: string; repoTags: string[] }> };
  const found = images.images.find((i) => i.id === oci.configDigest);
  assert.ok(found, `containerd imported berth's export: ${JSON.stringify(images)}`);
  assert.deepEqual(found.repoTags, ['example.com/export/me:3']);

  const notBerth = await target.ctl(['-r', containerd.endpoint, 'image', 'import', join(dir, 'out.tar')]);
  assert.equal(notBerth.code, 1);
  assert.match(notBerth.stderr, /image import and export need berthd/);
});
