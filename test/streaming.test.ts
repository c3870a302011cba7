// Streaming exec, attach and port-forward through berthd: berthctl's SPDY client
// against berthd's streaming server, with real runc, conmon and a pod network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { containerTestSkip, setupContainerTest, waitExited } from './helpers/containers.js';
import { remoteCommand } from '../src/cli/stream-client.js';
import { PassThrough, Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { cleanup } from './helpers/scope.js';
import { CONTAINERD, startContainerd, pushPauseImage, registryCriToml } from './helpers/containerd.js';
import { runBerthctl } from './helpers/berthd.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { startRegistry } from './helpers/registry.js';
import { startPodNetwork } from './helpers/pod-network.js';
import { BERTHCTL } from './helpers/paths.js';
import { RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { spawn } from 'node:child_process';
import { run } from './helpers/processes.js';

const skip = containerTestSkip;

function collect() {
  const stream = new PassThrough();
  const parts: Buffer[] = [];
  stream.on('data', (d: Buffer) => parts.push(d));
  return { stream, text: () => Buffer.concat(parts).toString(), bytes: () => Buffer.concat(parts) };
}

test('streaming exec, attach and port-forward against berthd', { skip }, async (t) => {
  const { berthd, runtime, image, podId } = await setupContainerTest(t);
  const create = async (name: string, command: string[], extra: object = {}) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command, logPath: `${name}.log`, ...extra } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const sleeper = await create('sleeper', ['sleep', '600']);

  await t.test('exec without a TTY: stdin piped, stdout and stderr apart, exit code', async () => {
    const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sh', '-c', 'cat; echo err >&2; exit 7'], stdin: true, stdout: true, stderr: true });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]+$/);
    const out = collect();
    const err = collect();
    const code = await remoteCommand(url, { stdin: Readable.from([Buffer.from('hello '), Buffer.from('world\n')]), stdout: out.stream, stderr: err.stream, tty: false });
    assert.equal(code, 7);
    assert.equal(out.text(), 'hello world\n');
    assert.equal(err.text(), 'err\n');
    // The token was used: a second connection gets 404.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' } });
      req.on('upgrade', () => resolve(101));
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 404);
  });

  await t.test('exec through berthctl: stdin, exit code, a few MB of output', async () => {
    const r = await berthd.ctl(['exec', '-i', sleeper, 'sh', '-c', 'tr a-z A-Z; exit 4'], { input: 'shout\n' } as never);
    assert.equal(r.stdout, 'SHOUT\n');
    assert.equal(r.code, 4);
    const big = await berthd.ctl(['exec', sleeper, 'sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x']);
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.stdout.length, 3_000_000);
  });

  await t.test('exec with a TTY: a terminal, its size, the exit code', async () => {
    const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sh', '-c', '[ -t 1 ] && echo is-a-tty; exit 5'], stdin: false, stdout: true, stderr: false, tty: true });
    const out = collect();
    const code = await remoteCommand(url, { stdout: out.stream, tty: true, initialSize: { width: 100, height: 40 } });
    assert.equal(code, 5);
    assert.match(out.text(), /is-a-tty\r\n/);
  });

  await t.test('attach: output of a running container, stdin to it', async () => {
    const echoer = await create('echoer', ['sh', '-c', 'while read line; do echo "got $line"; done; echo bye'], { stdin: true, stdinOnce: true });
    const { url } = await runtime.attach({ containerId: echoer, stdin: true, stdout: true, stderr: true });
    const out = collect();
    const code = await remoteCommand(url, { stdin: Readable.from([Buffer.from('one\ntwo\n')]), stdout: out.stream, stderr: new PassThrough(), tty: false });
    assert.equal(code, 0);
    assert.equal(out.text(), 'got one\ngot two\nbye\n');
    await waitExited(runtime, echoer);
  });

  await t.test('a client that goes away leaves nothing running', async () => {
    const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sleep', '4242'], stdin: true, stdout: true, stderr: true });
    const { spdyConnect } = await import('../src/cli/stream-client.js');
    const { session } = await spdyConnect(url, ['v4.channel.k8s.io']);
    for (const type of ['error', 'stdin', 'stdout', 'stderr']) await session.openStream({ streamtype: type });
    await sleep(500);
    const before = await runtime.execSync({ containerId: sleeper, cmd: ['ps'], timeout: 10n });
    assert.match(Buffer.from(before.stdout).toString(), /sleep 4242/);
    session.destroy();
    await sleep(500);
    const after = await runtime.execSync({ containerId: sleeper, cmd: ['ps'], timeout: 10n });
    assert.doesNotMatch(Buffer.from(after.stdout).toString(), /sleep 4242/);
  });

  await t.test('attach to a TTY container: input in, output out, resize accepted', async () => {
    const shell = await create('shell', ['sh'], { tty: true, stdin: true, stdinOnce: true });
    const { url } = await runtime.attach({ containerId: shell, stdin: true, stdout: true, tty: true });
    const out = collect();
    const code = await remoteCommand(url, { stdin: Readable.from([Buffer.from('echo tty-$((6*7))\nexit\n')]), stdout: out.stream, tty: true, initialSize: { width: 90, height: 30 } });
    assert.equal(code, 0);
    assert.match(out.text(), /tty-42\r\n/);
    await waitExited(runtime, shell);
  });

  await t.test('port-forward: a few MB through the pod\'s localhost', async () => {
    await create('server', ['sh', '-c', 'while true; do nc -l -p 8080 -e cat; done']);
    await sleep(300);
    const child = (await import('node:child_process')).spawn(process.execPath, [(await import('./helpers/paths.js')).BERTHCTL, '-r', berthd.endpoint, 'port-forward', podId, '0:8080'], { env: { PATH: process.env.PATH, CRI_CONFIG_FILE: '/dev/null' } });
    t.after(() => child.kill());
    const line = await new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n')) resolve(text);
      });
      child.stderr.on('data', (d: Buffer) => reject(new Error(d.toString())));
    });
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
    const payload = randomBytes(3 * 1024 * 1024);
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const parts: Buffer[] = [];
      let size = 0;
      socket.on('data', (d: Buffer) => {
        parts.push(d);
        size += d.length;
        if (size >= payload.length) {
          socket.destroy();
          resolve(Buffer.concat(parts));
        }
      });
      socket.on('error', reject);
      socket.write(payload);
    });
    assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  });
});

const CRICTL = '/var/cache/berth-test-tools/cri-tools-v1.37.0/crictl';

test('crictl (cri-tools v1.37.0) exec, exec -t, attach and port-forward against berthd', { skip: skip || (!existsSync(CRICTL) ? 'crictl is not built (bash scripts/build-cri-tools.sh)' : false) }, async (t) => {
  const { berthd, runtime, image, podId } = await setupContainerTest(t);
  const crictl = (args: string[], input = '') => run(CRICTL, ['-r', berthd.endpoint, '-t', '20s', ...args], { input, env: { PATH: process.env.PATH }, timeoutMs: 60_000 });
  const create = async (name: string, command: string[], extra: object = {}) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command, logPath: `${name}.log`, ...extra } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const sleeper = await create('sleeper', ['sleep', '600']);
  const piped = await crictl(['exec', '-i', sleeper, 'sh', '-c', 'tr a-z A-Z; echo to-stderr >&2; exit 3'], 'quiet please\n');
  assert.equal(piped.stdout, 'QUIET PLEASE\n', piped.stderr + berthd.logs().slice(-3000));
  assert.match(piped.stderr, /^to-stderr$/m);
  // crictl reports the command's code in its message and exits 1.
  assert.match(piped.stderr, /command terminated with exit code 3/);
  assert.equal(piped.code, 1);
  // crictl -it wants a terminal on its stdin: script(1) gives it one.
  const tty = await run('script', ['-qec', `${CRICTL} -r ${berthd.endpoint} exec -it ${sleeper} sh -c '[ -t 1 ] && echo is-a-tty; read x; echo "read $x"'`, '/dev/null'], { input: 'typed\n', env: { PATH: process.env.PATH }, timeoutMs: 60_000 });
  assert.equal(tty.code, 0, tty.stderr);
  assert.match(tty.stdout, /is-a-tty\r\n/);
  assert.match(tty.stdout, /read typed\r\n/);
  const echoer = await create('echoer', ['sh', '-c', 'while read line; do echo "got $line"; done'], { stdin: true, stdinOnce: true });
  const attached = await crictl(['attach', '-i', echoer], 'one\n');
  assert.equal(attached.code, 0, attached.stderr);
  assert.equal(attached.stdout, 'got one\n');

  await create('server', ['sh', '-c', 'while true; do echo pong | nc -l -p 8081; done']);
  await sleep(300);
  const child = spawn(CRICTL, ['-r', berthd.endpoint, 'port-forward', podId, '18181:8081'], { env: { PATH: process.env.PATH } });
  t.after(() => child.kill());
  await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('Forwarding') && resolve()));
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect(18181, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  assert.equal(reply, 'pong\n');
});

test("berthctl's SPDY client against containerd's streaming server: exec -i, exec -t, port-forward", { skip: skip || (!existsSync(CONTAINERD) ? 'containerd is not installed' : !existsSync('/usr/bin/catatonit') ? 'catatonit is not installed' : false) }, async (t) => {
  const registry = await startRegistry(t);
  const pauseImage = await pushPauseImage(registry);
  await pushImage(registry, 'interop/busybox', '1', { layers: [buildLayer(busyboxEntries())], config: { Env: ['PATH=/bin'], WorkingDir: '/tmp' } });
  const image = `${registry.host}/interop/busybox:1`;
  const net = await startPodNetwork(t);
  const containerd = await startContainerd(t, {
    cniConfDir: net.confDir,
    criToml: registryCriToml(registry, pauseImage),
  });
  const channel = openChannel(containerd.endpoint);
  cleanup(t).after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  const ctl = (args: string[], input?: string) => runBerthctl(['-r', containerd.endpoint, '-t', '30s', ...args], { input });
  assert.equal((await ctl(['pull', image])).code, 0);
  const { podSandboxId } = await runtime.runPodSandbox({ config: { metadata: { name: 'stream-pod', namespace: 'test', uid: 'stream-pod-uid', attempt: 0 }, hostname: 'stream-pod' } }, { timeoutMs: 60_000 });
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId }, { timeoutMs: 60_000 }).catch(() => undefined));
  const create = async (name: string, command: string[]) => {
    const { containerId } = await runtime.createContainer({ podSandboxId, config: { metadata: { name }, image: { image }, command }, sandboxConfig: { metadata: { name: 'stream-pod', namespace: 'test', uid: 'stream-pod-uid', attempt: 0 } } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const sleeper = await create('sleeper', ['sleep', '600']);
  const piped = await ctl(['exec', '-i', sleeper, 'sh', '-c', 'tr a-z A-Z; echo oops >&2; exit 6'], 'loud\n');
  assert.deepEqual([piped.stdout, piped.stderr, piped.code], ['LOUD\n', 'oops\n', 6]);
  const big = await ctl(['exec', sleeper, 'sh', '-c', 'head -c 2000000 /dev/zero | tr "\\0" y']);
  assert.equal(big.stdout.length, 2_000_000);
  const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sh', '-c', '[ -t 1 ] && echo is-a-tty; exit 2'], stdout: true, tty: true });
  const out = collect();
  assert.equal(await remoteCommand(url, { stdout: out.stream, tty: true, initialSize: { width: 80, height: 24 } }), 2);
  assert.match(out.text(), /is-a-tty\r\n/);

  await create('server', ['sh', '-c', 'while true; do nc -l -p 8082 -e cat; done']);
  await sleep(300);
  const child = spawn(process.execPath, [BERTHCTL, '-r', containerd.endpoint, 'port-forward', podSandboxId, '0:8082'], { env: { PATH: process.env.PATH, CRI_CONFIG_FILE: '/dev/null' } });
  cleanup(t).after(() => child.kill());
  const line = await new Promise<string>((resolve) => child.stdout.on('data', (d: Buffer) => resolve(d.toString())));
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
  const payload = randomBytes(1024 * 1024);
  const echoed = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let size = 0;
    socket.on('data', (d: Buffer) => {
      parts.push(d);
      size += d.length;
      if (size >= payload.length) {
        socket.destroy();
        resolve(Buffer.concat(parts));
      }
    });
    socket.on('error', reject);
    socket.write(payload);
  });
  assert.ok(echoed.equals(payload));
});
