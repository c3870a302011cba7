#!/usr/bin/env node
// Builds a one-layer busybox image from Debian's busybox-static as an OCI image layout
// archive, for `berthctl image import`: no registry and no network needed.
//   node scripts/build-busybox-image.mjs OUT.tar [NAME]   (NAME default: localhost/busybox:latest)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [out, name = 'localhost/busybox:latest'] = process.argv.slice(2);
if (!out) {
  console.error('usage: build-busybox-image.mjs OUT.tar [NAME]');
  process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), 'busybox-image-'));
try {
  const rootfs = join(work, 'rootfs');
  for (const dir of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'home']) mkdirSync(join(rootfs, dir), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const applet of ['sh', 'echo', 'cat', 'ls', 'sleep', 'id', 'env', 'hostname', 'uname', 'date', 'true', 'false', 'ps', 'wc', 'head']) {
    symlinkSync('busybox', join(rootfs, 'bin', applet));
  }
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  const layer = join(work, 'layer.tar');
  execFileSync('tar', ['--numeric-owner', '--sort=name', '--mtime=2024-01-01', '-C', rootfs, '-cf', layer, '.']);
  const layerBytes = readFileSync(layer);
  const sha = (b) => createHash('sha256').update(b).digest('hex');
  const config = Buffer.from(JSON.stringify({
    architecture: { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch,
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: ['sh'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layerBytes)}`] },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(layerBytes)}`, size: layerBytes.length }],
  }));
  const layout = join(work, 'layout');
  mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
  for (const blob of [layerBytes, config, manifest]) writeFileSync(join(layout, 'blobs/sha256', sha(blob)), blob);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { 'io.containerd.image.name': name } }],
  }));
  execFileSync('tar', ['-C', layout, '-cf', resolve(out), 'oci-layout', 'index.json', 'blobs']);
  console.log(`built ${name} (${(layerBytes.length / 1e6).toFixed(1)} MB) into ${resolve(out)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
