// Interop oracle: berthctl speaks to Debian's containerd CRI exactly as to berthd. If
// berth's proto or client were off on the wire, containerd would not understand it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containerdVersion, CONTAINERD, startContainerd, pushPauseImage, registryCriToml } from './helpers/containerd.js';
import { runBerthctl, startBerthd } from './helpers/berthd.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { DOCKER_REGISTRY, startRegistry } from './helpers/registry.js';
import { startPodNetwork } from './helpers/pod-network.js';
import { tempDir } from './helpers/tmp.js';
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

test('berthctl image verbs against containerd and berthd give the same image', { skip: skip || (!existsSync(DOCKER_REGISTRY) && 'docker-registry is not installed') }, async (t) => {
  const registry = await startRegistry(t);
  const pushed = await pushImage(registry, 'interop/busybox', '1', { layers: [buildLayer(busyboxEntries(), 'gzip', 'docker')], format: 'docker', config: { Cmd: ['sh'] } });
  const reference = `${registry.host}/interop/busybox:1`;
  const containerd = await startContainerd(t, {
    criToml: `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."${registry.host}"]\n    endpoint = ["${registry.url}"]`,
  });
  const berthd = await startBerthd(t);
  for (const [name, endpoint] of [['containerd', containerd.endpoint], ['berthd', berthd.endpoint]] as const) {
    const ctl = (args: string[]) => runBerthctl(['-r', endpoint, '--timeout', '20s', ...args]);
    const pull = await ctl(['pull', reference]);
    assert.equal(pull.code, 0, `${name}: ${pull.stderr}`);
    assert.equal(pull.stdout.trim(), `Image is up to date for ${pushed.configDigest}`, name);

    const listed = JSON.parse((await ctl(['images', '-o', 'json'])).stdout) as { images: Array<{ id: string; repoTags: string[]; repoDigests: string[]; size: string }> };
    const image = listed.images.find((i) => i.id === pushed.configDigest);
    assert.ok(image, `${name} lists the image`);
    assert.deepEqual(image.repoTags, [reference], name);
    assert.deepEqual(image.repoDigests, [`${registry.host}/interop/busybox@${pushed.manifestDigest}`], name);
    assert.match(image.size, /^\d+$/, `${name}: size is a uint64 in JSON`);

    const table = (await ctl(['images'])).stdout;
    assert.match(table, new RegExp(`^${registry.host}/interop/busybox\\s+1\\s+${pushed.configDigest.slice(7, 20)}\\s+\\d`, 'm'), name);
    const inspect = JSON.parse((await ctl(['inspecti', reference])).stdout) as { status: { id: string }; info?: unknown };
    assert.equal(inspect.status.id, pushed.configDigest, name);
    assert.equal(typeof inspect.info, 'object', `${name}: inspecti carries the verbose info`);
    const fsinfo = JSON.parse((await ctl(['imagefsinfo'])).stdout) as { status: { imageFilesystems: Array<{ usedBytes: { value: string } }> } };
    const used = fsinfo.status.imageFilesystems[0]!.usedBytes.value;
    assert.match(used, /^\d+$/, name);
    // containerd measures its snapshots every 10 s (stats_collect_period), so right after a
    // pull it may still say 0; berthd measures on demand.
    if (name === 'berthd') assert.ok(Number(used) > 1_000_000, `berthd counts the busybox layer (${used})`);

    const rmi = await ctl(['rmi', reference]);
    assert.equal(rmi.code, 0, `${name}: ${rmi.stderr}`);
    assert.match(rmi.stdout, new RegExp(`Deleted: ${reference.replace(/\./g, '\\.')}`), name);
    const after = await ctl(['inspecti', reference]);
    assert.equal(after.code, 1, name);
    assert.match(after.stderr, /no such image/, name);
  }
});

test('the same pod config through berthctl against containerd and berthd', { skip: skip || (!existsSync(DOCKER_REGISTRY) && 'docker-registry is not installed') || (!existsSync('/usr/bin/catatonit') && 'catatonit is not installed') }, async (t) => {
  // containerd's CRI needs a pause image: Debian's static catatonit, served locally.
  const registry = await startRegistry(t);
  const pauseImage = await pushPauseImage(registry);
  const net = await startPodNetwork(t);
  const containerd = await startContainerd(t, {
    cniConfDir: net.confDir,
    criToml: registryCriToml(registry, pauseImage),
  });
  const berthd = await startBerthd(t, { cniConfDir: net.confDir });
  const dir = await tempDir(t);
  const configPath = join(dir, 'pod.yaml');
  await writeFile(
    configPath,
    ['metadata:', '  name: interop', '  namespace: default', '  uid: interop-uid', '  attempt: 1', 'hostname: interop-host', 'log_directory: /tmp', 'labels:', '  app: interop', ''].join('\n'),
  );
  for (const [name, endpoint] of [['containerd', containerd.endpoint], ['berthd', berthd.endpoint]] as const) {
    const ctl = (args: string[]) => runBerthctl(['-r', endpoint, '--timeout', '60s', ...args]);
    const runp = await ctl(['runp', configPath]);
    assert.equal(runp.code, 0, `${name}: ${runp.stderr}`);
    const id = runp.stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/, name);
    const pods = JSON.parse((await ctl(['pods', '-o', 'json'])).stdout) as { items: Array<{ id: string; state: string; metadata: { name: string }; labels: Record<string, string> }> };
    const pod = pods.items.find((p) => p.id === id);
    assert.equal(pod?.state, 'SANDBOX_READY', name);
    assert.equal(pod?.metadata.name, 'interop', name);
    assert.equal(pod?.labels.app, 'interop', name);
    const table = (await ctl(['pods', '--name', 'interop'])).stdout;
    assert.match(table, new RegExp(`^${id.slice(0, 13)}\\s+.+ ago\\s+Ready\\s+interop\\s+default\\s+1\\s+`, 'm'), name);
    const inspect = JSON.parse((await ctl(['inspectp', id])).stdout) as { status: { network: { ip: string }; state: string } };
    assert.ok(inspect.status.network.ip.startsWith(net.subnet.replace(/0\/24$/, '')), `${name}: IP ${inspect.status.network.ip} in ${net.subnet}`);
    const again = await ctl(['runp', configPath]);
    assert.equal(again.code, 1, `${name}: the same metadata twice is refused`);
    assert.match(again.stderr, /reserved/, name);
    assert.equal((await ctl(['stopp', id])).stdout, `Stopped sandbox ${id}\n`, name);
    assert.equal(JSON.parse((await ctl(['inspectp', id])).stdout).status.state, 'SANDBOX_NOTREADY', name);
    assert.equal((await ctl(['rmp', id])).stdout, `Removed sandbox ${id}\n`, name);
    assert.equal((await ctl(['pods', '-q'])).stdout, '', name);
  }
});
