// Interop oracle: berthctl speaks to Debian's containerd CRI exactly as to berthd. If
// berth's proto or client were off on the wire, containerd would not understand it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { containerdVersion, CONTAINERD, startContainerd } from './helpers/containerd.js';
import { runBerthctl } from './helpers/berthd.js';
import { isRoot } from './helpers/paths.js';

const skip = !isRoot ? 'containerd needs root' : !existsSync(CONTAINERD) ? 'containerd is not installed' : false;

test('berthctl version and info against containerd', { skip }, async (t) => {
  const containerd = await startContainerd(t);
  const expectedVersion = await containerdVersion();
  const ctl = (args: string[]) => runBerthctl(['-r', containerd.endpoint, '--timeout', '10s', ...args]);

  const version = await ctl(['version']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^RuntimeName:\s+containerd$/m);
  assert.match(version.stdout, new RegExp(`^RuntimeVersion:\\s+v?${expectedVersion.replace(/[.~+]/g, '\\$&')}$`, 'm'));
  assert.match(version.stdout, /^RuntimeApiVersion:\s+v1$/m);

  const info = await ctl(['info', '-o', 'json']);
  assert.equal(info.code, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  const types = (parsed.status.conditions as Array<{ type: string }>).map((c) => c.type);
  assert.deepEqual(types.sort(), ['NetworkReady', 'RuntimeReady']);
  const network = parsed.status.conditions.find((c: { type: string }) => c.type === 'NetworkReady');
  assert.equal(network.status, false, 'the test gave containerd an empty CNI dir');
  assert.equal(network.reason, 'NetworkPluginNotReady');
  // containerd's verbose info is JSON per key, which berthctl inlines as crictl does.
  assert.equal(typeof parsed.config, 'object', 'containerd reports its CRI config under "config"');
  assert.ok(parsed.config.containerd, 'containerd config has its containerd section');

  const unknown = await ctl(['version', '-o', 'xml']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unsupported output format "xml"/);
});
