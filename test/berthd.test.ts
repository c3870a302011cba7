// berthd as a user meets it: started on its own socket and config, spoken to by berthctl
// and by raw gRPC clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { CgroupDriver, ImageService, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { launchBerthd, runBerthctl, startBerthd } from './helpers/berthd.js';
import { BERTHD, PACKAGE_ROOT } from './helpers/paths.js';
import { run } from './helpers/processes.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';

test('berthctl version and info against berthd', async (t) => {
  const berthd = await startBerthd(t);
  const version = await berthd.ctl(['version']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^RuntimeName:\s+berth$/m);
  assert.match(version.stdout, /^RuntimeApiVersion:\s+v1$/m);
  assert.match(version.stdout, /^Version:\s+0\.1\.0$/m);

  const json = JSON.parse((await berthd.ctl(['version', '-o', 'json'])).stdout);
  assert.equal(json.runtimeName, 'berth');
  assert.equal(json.runtimeVersion, JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);

  const info = await berthd.ctl(['info', '-o', 'json']);
  assert.equal(info.code, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  const conditions = parsed.status.conditions as Array<{ type: string; status: boolean; reason: string; message: string }>;
  assert.deepEqual(conditions.map((c) => c.type), ['RuntimeReady', 'NetworkReady']);
  assert.equal(conditions[0]!.status, true);
  const network = conditions[1]!;
  assert.equal(network.status, false, 'no CNI config in the test dir');
  assert.equal(network.reason, 'NetworkPluginNotReady');
  assert.match(network.message, /no network config \(.conflist, .conf, .json\) found/);
  assert.equal(parsed.config.listen, berthd.endpoint, 'verbose info carries the effective config');

  const yaml = await berthd.ctl(['info', '-o', 'yaml']);
  assert.match(yaml.stdout, /type: NetworkReady/);
  const table = await berthd.ctl(['info', '-o', 'table']);
  assert.match(table.stdout, /^NetworkReady\s+false\s+NetworkPluginNotReady/m);
});

test('NetworkReady turns true when a CNI config list appears, without a restart', async (t) => {
  const berthd = await startBerthd(t);
  const confDir = join(berthd.dir, 'net.d');
  await writeFile(join(confDir, '10-broken.conflist'), '{ not json');
  let info = JSON.parse((await berthd.ctl(['info'])).stdout);
  assert.equal(info.status.conditions[1].status, false);
  assert.match(info.status.conditions[1].message, /10-broken.conflist: not valid JSON/);
  await writeFile(
    join(confDir, '20-test.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'testnet', plugins: [{ type: 'loopback' }] }),
  );
  info = JSON.parse((await berthd.ctl(['info'])).stdout);
  assert.equal(info.status.conditions[1].status, true);
  assert.equal(info.network.network, 'testnet');
});

test('the socket is root-only and removed on SIGTERM', async (t) => {
  const berthd = await startBerthd(t);
  const mode = (await stat(berthd.socket)).mode & 0o777;
  assert.equal(mode.toString(8), '660');
  assert.equal(await berthd.stop('SIGTERM'), 0);
  assert.equal(existsSync(berthd.socket), false);
});

/** glibc's malloc arenas besides the main one: 64 MB regions, 64 MB aligned, read-write at the front and reserved after. */
function threadArenas(pid: number): number {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n').map((line) => {
    const [range, perm, , , , name] = line.split(/\s+/);
    const [start, end] = range!.split('-').map((x) => BigInt(`0x${x}`));
    return { start: start!, end: end!, perm, name };
  });
  const size = 64n << 20n;
  return maps.filter((m, i) => {
    if (m.perm !== 'rw-p' || m.name || m.start % size !== 0n) return false;
    const next = maps[i + 1];
    const end = next && next.start === m.end && next.perm === '---p' && !next.name ? next.end : m.end;
    return end - m.start === size;
  }).length;
}

test("berthd's #! line gives glibc one malloc arena; the host tools berthd runs do not get that setting", async (t) => {
  const berthd = await startBerthd(t);
  const pid = berthd.process.pid!;
  assert.ok(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('MALLOC_ARENA_MAX=1'));
  const channel = openChannel(berthd.endpoint);
  t.after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  // Calls make V8's and libuv's threads malloc (each would get an arena of its own otherwise: 9 seen).
  for (let i = 0; i < 300; i++) await runtime.listContainers({}, { timeoutMs: 10_000 });
  assert.equal(threadArenas(pid), 0);
  // The spawning helper, when start-up ran a host tool (it stays 10 s after its last child).
  const children = (await run('pgrep', ['-P', String(pid)])).stdout.split('\n').filter(Boolean);
  if (children.length === 0) t.diagnostic('no child of berthd to look at (start-up ran no host tool)');
  for (const child of children) {
    const environ = (() => {
      try {
        return readFileSync(`/proc/${child}/environ`, 'utf8');
      } catch {
        return ''; // gone meanwhile
      }
    })();
    assert.ok(!environ.includes('MALLOC_ARENA_MAX'), `child ${child} has MALLOC_ARENA_MAX`);
  }
});

test('every RPC of runtime.v1 is served; one without a handler would answer UNIMPLEMENTED with its name', async (t) => {
  const berthd = await startBerthd(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const served = new Set([
    'RuntimeService.Version',
    'RuntimeService.Status',
    'RuntimeService.RuntimeConfig',
    'RuntimeService.UpdateRuntimeConfig',
    'RuntimeService.RunPodSandbox',
    'RuntimeService.StopPodSandbox',
    'RuntimeService.RemovePodSandbox',
    'RuntimeService.PodSandboxStatus',
    'RuntimeService.ListPodSandbox',
    'RuntimeService.CreateContainer',
    'RuntimeService.StartContainer',
    'RuntimeService.StopContainer',
    'RuntimeService.RemoveContainer',
    'RuntimeService.ContainerStatus',
    'RuntimeService.ListContainers',
    'RuntimeService.ExecSync',
    'RuntimeService.Exec',
    'RuntimeService.Attach',
    'RuntimeService.PortForward',
    'RuntimeService.UpdateContainerResources',
    'RuntimeService.ReopenContainerLog',
    'RuntimeService.ContainerStats',
    'RuntimeService.ListContainerStats',
    'RuntimeService.PodSandboxStats',
    'RuntimeService.ListPodSandboxStats',
    'RuntimeService.GetContainerEvents',
    'RuntimeService.StreamPodSandboxes',
    'RuntimeService.StreamContainers',
    'RuntimeService.StreamContainerStats',
    'RuntimeService.StreamPodSandboxStats',
    'ImageService.StreamImages',
    'RuntimeService.UpdatePodSandboxResources',
    'RuntimeService.ListMetricDescriptors',
    'RuntimeService.ListPodSandboxMetrics',
    'RuntimeService.StreamPodSandboxMetrics',
    'RuntimeService.CheckpointContainer',
    'ImageService.PullImage',
    'ImageService.ImageStatus',
    'ImageService.ListImages',
    'ImageService.RemoveImage',
    'ImageService.ImageFsInfo',
  ]);
  let checked = 0;
  for (const service of [RuntimeService, ImageService] as GenService<GenServiceMethods>[]) {
    const client = serviceClient(service, channel) as unknown as Record<string, (req: object, o: object) => unknown>;
    for (const method of service.methods) {
      if (served.has(`${service.name}.${method.name}`)) continue;
      const call = client[method.localName]!({}, { timeoutMs: 5000 });
      let error: GrpcCallError | undefined;
      try {
        if (method.methodKind === 'server_streaming') {
          for await (const _ of call as AsyncIterable<unknown>) assert.fail(`${method.name} streamed a message`);
        } else {
          await call;
        }
      } catch (err) {
        error = err as GrpcCallError;
      }
      assert.ok(error, `${method.name} did not fail`);
      assert.equal(error.code, GrpcStatus.UNIMPLEMENTED, `${method.name}: ${error.message}`);
      assert.match(error.details, new RegExp(method.name));
      checked++;
    }
  }
  // Since CheckpointContainer (issue 13) every RPC has a handler: none was left to check.
  assert.equal(checked, 0, `${checked} RPCs of the proto have no handler`);
  // And berthd is still serving.
  assert.equal((await berthd.ctl(['version'])).code, 0);
});

test('a malformed request gets an error status and berthd keeps serving', async (t) => {
  const berthd = await startBerthd(t);
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(berthd.socket) });
  cleanup(t).after(() => session.close());
  const status = await new Promise<{ grpcStatus: string | undefined; message: string | undefined }>((resolve, reject) => {
    const request = session.request({
      ':method': 'POST',
      ':path': '/runtime.v1.RuntimeService/Version',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let headers: Record<string, unknown> = {};
    request.on('response', (h) => (headers = h));
    request.on('trailers', (trailers) =>
      resolve({ grpcStatus: String(trailers['grpc-status'] ?? headers['grpc-status']), message: String(trailers['grpc-message'] ?? '') }),
    );
    request.on('error', reject);
    request.on('end', () => resolve({ grpcStatus: headers['grpc-status'] as string | undefined, message: headers['grpc-message'] as string | undefined }));
    request.resume();
    // A gRPC frame whose payload is not a valid protobuf: field 1 claims 127 bytes it lacks.
    const payload = Buffer.from([0x0a, 0x7f, 0x41, 0x42]);
    const frame = Buffer.alloc(5 + payload.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(payload.length, 1);
    payload.copy(frame, 5);
    request.end(frame);
  });
  assert.ok(status.grpcStatus && status.grpcStatus !== '0', `expected an error status, got ${JSON.stringify(status)}`);
  const after = await berthd.ctl(['version']);
  assert.equal(after.code, 0, after.stderr);
  assert.equal(berthd.process.exitCode, null, 'berthd is still running');
});

test('a second berthd on the live socket exits with a clear error and leaves the first alone', async (t) => {
  const first = await startBerthd(t);
  const second = await run(process.execPath, [BERTHD, '--config', first.configPath], { timeoutMs: 20_000 });
  assert.equal(second.code, 1);
  assert.match(second.stderr, /another process is already serving on .*berth\.sock/);
  const version = await first.ctl(['version']);
  assert.equal(version.code, 0, version.stderr);
});

test('a stale socket left by a killed berthd is replaced on restart', async (t) => {
  const first = await startBerthd(t);
  await first.stop('SIGKILL');
  assert.ok(existsSync(first.socket), 'SIGKILL leaves the socket file behind');
  const again = await launchBerthd(t, first.dir, first.configPath, first.socket);
  const version = await again.ctl(['version']);
  assert.equal(version.code, 0, version.stderr + again.logs());
});

test('start-up refuses a bad config with a message naming the key', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'berth.toml');
  await writeFile(path, `listen = "unix://${dir}/b.sock"\n[cni]\nconf_dri = "/x"\n`);
  const result = await run(process.execPath, [BERTHD, '--config', path]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /unknown key "cni.conf_dri"/);
  assert.equal(existsSync(join(dir, 'b.sock')), false, 'no socket was created');

  const missing = await run(process.execPath, [BERTHD, '--config', join(dir, 'none.toml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read config .*none\.toml/);
});

test('berthd config prints the effective config with flags applied', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'berth.toml');
  await writeFile(path, 'log_level = "warn"\n[stream]\nport = 12345\n');
  const result = await run(process.execPath, [BERTHD, '--config', path, '--root', '/srv/r', 'config']);
  assert.equal(result.code, 0, result.stderr);
  const printed = parseToml(result.stdout) as Record<string, any>;
  assert.equal(printed.root, '/srv/r');
  assert.equal(printed.log_level, 'warn');
  assert.equal(printed.stream.port, 12345);
  assert.equal(printed.listen, 'unix:///run/berth/berth.sock');
  assert.equal(printed.runtimes.runc.path, '/usr/sbin/runc');
});

test('berthctl gives a one-line error and exit 1 when nothing serves the socket', async (t) => {
  const dir = await tempDir(t);
  const result = await runBerthctl(['-r', `unix://${dir}/absent.sock`, 'version']);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  assert.match(result.stderr, /^berthctl: getting the runtime version: rpc error: code = Unavailable desc = .*absent\.sock/);
});

test('RuntimeConfig answers the configured cgroup driver; UpdateRuntimeConfig records the pod CIDR', async (t) => {
  // The default driver here; the systemd one needs a systemd (test/systemd-cgroup.test.ts checks its answer).
  const berthd = await startBerthd(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  assert.equal((await runtime.runtimeConfig({})).linux?.cgroupDriver, CgroupDriver.CGROUPFS);
  await runtime.updateRuntimeConfig({ runtimeConfig: { networkConfig: { podCidr: '10.244.1.0/24' } } });
  const info = JSON.parse((await berthd.ctl(['info'])).stdout) as { runtimeConfig: { podCidr: string } };
  assert.equal(info.runtimeConfig.podCidr, '10.244.1.0/24');
  // Pod calls on ids that do not exist: NotFound for status, success for stop and remove.
  await assert.rejects(runtime.podSandboxStatus({ podSandboxId: 'nope' }), { code: GrpcStatus.NOT_FOUND });
  await runtime.stopPodSandbox({ podSandboxId: 'nope' });
  await runtime.removePodSandbox({ podSandboxId: 'nope' });
  await assert.rejects(runtime.runPodSandbox({}), { code: GrpcStatus.INVALID_ARGUMENT });
});

test('StopContainer, RemoveContainer, StopPodSandbox and RemovePodSandbox of an unknown id succeed (idempotent, as the CRI says)', async (t) => {
  const berthd = await startBerthd(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  const ghost = 'f'.repeat(64);
  await runtime.stopContainer({ containerId: ghost, timeout: 1n });
  await runtime.removeContainer({ containerId: ghost });
  await runtime.stopPodSandbox({ podSandboxId: ghost });
  await runtime.removePodSandbox({ podSandboxId: ghost });
  // Status still says what is not there.
  await assert.rejects(runtime.containerStatus({ containerId: ghost }), (err: GrpcCallError) => err.code === GrpcStatus.NOT_FOUND);
});
