// Image references normalised as the kubelet, crictl and Docker write them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReference, parseReference } from '../src/util/image-reference.js';

const digest = `sha256:${'a1'.repeat(32)}`;

test('references normalise as Docker does', () => {
  const cases: Array<[string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
    ['someone/app', 'docker.io/someone/app:latest'],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    ['localhost/app:v1', 'localhost/app:v1'],
    ['localhost:5000/a/b/c:v1', 'localhost:5000/a/b/c:v1'],
    [`busybox@${digest}`, `docker.io/library/busybox@${digest}`],
    [`busybox:1.36@${digest}`, `docker.io/library/busybox:1.36@${digest}`],
    [`127.0.0.1:5000/app:tag@${digest}`, `127.0.0.1:5000/app:tag@${digest}`],
    ['quay.io/a_b/c-d.e__f:x.y-z_1', 'quay.io/a_b/c-d.e__f:x.y-z_1'],
  ];
  for (const [input, expected] of cases) assert.equal(formatReference(parseReference(input)), expected, input);
});

test('bad references are InvalidArgument with the reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['busybox:', /bad tag/],
    ['busybox:-x', /bad tag/],
    [`busybox@sha256:${'a'.repeat(10)}`, /bad digest/],
    [`busybox@sha512:${'a'.repeat(128)}`, /only sha256/],
    ['a//b', /bad repository name component ""/],
    ['app/-x', /bad repository name component "-x"/],
    ['host:port:x/app', /bad registry host|bad tag/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseReference(input), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'InvalidArgument', input);
      assert.match(err.message, message, input);
      return true;
    });
  }
});
