// Issue 11's acceptance checks against a real berthd (runc, conmon, a pod network):
// the real crictl (cri-tools v1.37.0) over both transports — exec -it following a
// resize, exec -i with piped stdin, attach, port-forward carrying 10 MB intact and
// several connections at once — then 100 exec sessions that leak no file descriptor in
// berthd and leave no process in the container, clients that vanish mid-stream, and
// berthctl's WebSocket client against containerd's streaming server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { containerTestSkip, setupContainerTest, waitExited } from './helpers/containers.js';
import { run } from './helpers/processes.js';
import { remoteCommand, spdyConnect, wsConnect, type StreamTransport } from '../src/cli/stream-client.js';
import { cleanup } from './helpers/scope.js';
import { CONTAINERD, startContainerd, pushPauseImage, registryCriToml } from './helpers/containerd.js';
import { runBerthctl } from './helpers/berthd.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { startRegistry } from './helpers/registry.js';
import { startPodNetwork } from './helpers/pod-network.js';
import { BERTHCTL } from './helpers/paths.js';
import { RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';

const CRICTL = '/var/cache/berth-test-tools/cri-tools-v1.37.0/crictl';
const TRANSPORTS: StreamTransport[] = ['spdy', 'websocket'];

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Sends `payload` through a local port and reads back as many bytes (an echo server behind it). */
function echoThrough(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
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
    socket.on('close', () => size < payload.length && reject(new Error(`connection closed after ${size} of ${payload.length} bytes`)));
    socket.write(payload);
  });
}

/** Waits until `child`'s output (stdout and stderr) matches. */
function waitOutput(child: ChildProcess, pattern: RegExp, ms = 20_000): Promise<string> {
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${ms} ms; got ${JSON.stringify(text)}`)), ms);
    const on = (d: Buffer) => {
      text += d.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
  });
}

function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number) => (children.get(p) ?? []).forEach((c) => (out.push(c), walk(c)));
  walk(pid);
  return out;
}

test('crictl v1.37.0 over SPDY and WebSocket against berthd: exec -i, exec -it with a resize, attach, port-forward', { skip: containerTestSkip || (!existsSync(CRICTL) ? 'crictl is not built (bash scripts/build-cri-tools.sh)' : false) }, async (t) => {
  const { berthd, runtime, image, podId } = await setupContainerTest(t);
  const create = async (name: string, command: string[], extra: object = {}) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command, logPath: `${name}.log`, ...extra } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const sleeper = await create('sleeper', ['sleep', '600']);
  // A persistent echo server (nc -ll forks per connection): concurrent connections work.
  await create('echo-server', ['nc', '-ll', '-p', '8080', '-e', 'cat']);
  const env = { PATH: process.env.PATH };
  let localPort = 18380;

  for (const transport of TRANSPORTS) {
    await t.test(`${transport}: exec -i with piped stdin (its end reaches the command)`, async () => {
      const r = await run(CRICTL, ['-r', berthd.endpoint, '-t', '20s', 'exec', '--transport', transport, '-i', sleeper, 'sh', '-c', 'tr a-z A-Z; echo err >&2; exit 3'], { input: 'quiet please\n', env, timeoutMs: 60_000 });
      assert.equal(r.stdout, 'QUIET PLEASE\n', r.stderr + berthd.logs().slice(-3000));
      assert.match(r.stderr, /^err$/m);
      assert.match(r.stderr, /command terminated with exit code 3/);
      assert.equal(r.code, 1);
    });

    await t.test(`${transport}: exec -it under a terminal: stty size inside follows a resize`, async () => {
      const inner = 'echo started; read x; busybox stty size; read y; busybox stty size; read z; echo bye-$z';
      const child = spawn('script', ['-qfec', `${CRICTL} -r ${berthd.endpoint} exec --transport ${transport} -it ${sleeper} sh -c '${inner}'`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      t.after(() => child.kill('SIGKILL'));
      await waitOutput(child, /started/);
      // The terminal script made for crictl (0x0 at first): resizing it sends crictl SIGWINCH.
      let tty = '';
      for (let i = 0; i < 50 && !tty; i++) {
        const crictl = descendants(child.pid!).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(CRICTL));
        if (crictl) tty = readlinkSync(`/proc/${crictl}/fd/0`);
        else await sleep(100);
      }
      assert.match(tty, /^\/dev\/pts\/\d+$/);
      for (const [rows, cols] of [[20, 70], [37, 111]]) {
        assert.equal((await run('stty', ['-F', tty, 'rows', String(rows), 'cols', String(cols)])).code, 0);
        await sleep(1000);
        const seen = waitOutput(child, new RegExp(`^${rows} ${cols}\\r?$`, 'm'));
        child.stdin.write('go\n');
        await seen;
      }
      child.stdin.write('done\n');
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0);
    });

    await t.test(`${transport}: exec -it: the terminal's size at the start reaches the command`, async () => {
      // crictl (like kubectl) sends its terminal's size as the session opens, before the
      // command and its terminal exist; berthd applies it once conmon has the terminal.
      const r = await run('script', ['-qfec', `stty rows 23 cols 89; ${CRICTL} -r ${berthd.endpoint} exec --transport ${transport} -it ${sleeper} sh -c 'sleep 1; busybox stty size'`, '/dev/null'], { env, timeoutMs: 60_000 });
      assert.match(r.stdout, /(^|\^@)23 89\r?$/m, r.stdout + r.stderr); // script echoes the end of its input as ^@
      assert.equal(r.code, 0);
    });

    await t.test(`${transport}: attach -i`, async () => {
      const echoer = await create(`echoer-${transport}`, ['sh', '-c', 'while read line; do echo "got $line"; done'], { stdin: true, stdinOnce: true });
      const r = await run(CRICTL, ['-r', berthd.endpoint, '-t', '20s', 'attach', '--transport', transport, '-i', echoer], { input: 'one\ntwo\n', env, timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'got one\ngot two\n');
      await waitExited(runtime, echoer);
    });

    await t.test(`${transport}: port-forward: 10 MB intact, several connections at once`, async () => {
      const port = localPort++;
      const child = spawn(CRICTL, ['-r', berthd.endpoint, 'port-forward', '--transport', transport, podId, `${port}:8080`], { env });
      t.after(() => child.kill());
      await waitOutput(child, /Forwarding from/);
      const big = randomBytes(10 * 1024 * 1024);
      assert.equal(sha(await echoThrough(port, big)), sha(big));
      const payloads = Array.from({ length: 6 }, (_, i) => randomBytes(512 * 1024 + i * 1000));
      const echoes = await Promise.all(payloads.map((p) => echoThrough(port, p)));
      echoes.forEach((echo, i) => assert.equal(sha(echo), sha(payloads[i]!)));
      child.kill();
    });
  }
});

test('100 exec sessions leak no descriptor in berthd and leave no process; vanished clients free theirs', { skip: containerTestSkip }, async (t) => {
  const { berthd, runtime, image, podId } = await setupContainerTest(t);
  const { containerId: sleeper } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '600'], logPath: 'sleeper.log' } });
  await runtime.startContainer({ containerId: sleeper });
  const pid = berthd.process.pid!;
  const fds = () => readdirSync(`/proc/${pid}/fd`).length;
  const ps = async () => Buffer.from((await runtime.execSync({ containerId: sleeper, cmd: ['ps', '-o', 'pid,args'], timeout: 10n })).stdout).toString();
  const session = async (i: number) => {
    const transport = TRANSPORTS[i % 2]!;
    const tty = i % 4 >= 2;
    const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sh', '-c', 'read x; echo "got $x"; exit 4'], stdin: true, stdout: true, stderr: !tty, tty });
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const code = await remoteCommand(url, { transport, stdin: Readable.from([Buffer.from(`n${i}\n`)]), stdout: out, stderr: new PassThrough(), tty, initialSize: tty ? { width: 80, height: 24 } : undefined });
    assert.equal(code, 4, `session ${i} (${transport}, tty ${tty})`);
    assert.match(text, new RegExp(`got n${i}`));
  };
  // Warm up every path once (lazily opened descriptors), then count.
  for (let i = 0; i < 4; i++) await session(i);
  await sleep(500);
  const before = fds();
  for (let i = 0; i < 100; i++) await session(i);
  for (let i = 0; i < 100 && fds() > before; i++) await sleep(100);
  const after = fds();
  assert.ok(after <= before, `berthd had ${before} descriptors before 100 exec sessions and ${after} after`);
  assert.doesNotMatch(await ps(), /read x|sh -c/);
  // The helpers a session starts (runc exec, conmon --exec, the Perl relays) must all be gone.
  const berthdHelpers = () =>
    descendants(pid)
      .map((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
        } catch {
          return '';
        }
      })
      .filter((c) => /^perl |\bnsenter\b| exec |--exec/.test(c));

  // Clients that go away mid-stream, every transport and mode: their processes go too.
  const vanish = async (transport: StreamTransport, tty: boolean, marker: string) => {
    const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sh', '-c', `yes ${marker}`], stdin: true, stdout: true, stderr: !tty, tty });
    if (transport === 'websocket') {
      const { ws } = await wsConnect(url, ['v5.channel.k8s.io']);
      ws.resume();
      await sleep(700);
      assert.match(await ps(), new RegExp(`yes ${marker}`));
      ws.terminate();
    } else {
      const { session } = await spdyConnect(url, ['v4.channel.k8s.io']);
      for (const type of ['error', 'stdin', 'stdout', ...(tty ? ['resize'] : ['stderr'])]) (await session.openStream({ streamtype: type })).resume();
      await sleep(700);
      assert.match(await ps(), new RegExp(`yes ${marker}`));
      session.destroy();
    }
    for (let i = 0; i < 50 && new RegExp(`yes ${marker}`).test(await ps()); i++) await sleep(100);
    assert.doesNotMatch(await ps(), new RegExp(`yes ${marker}`), `${transport} tty ${tty}`);
  };
  await vanish('websocket', false, 'ws-pipe');
  await vanish('websocket', true, 'ws-tty');
  await vanish('spdy', false, 'spdy-pipe');
  await vanish('spdy', true, 'spdy-tty');
  // The helpers end as their pipes close; on a loaded machine that can take a moment.
  for (let i = 0; i < 100 && (berthdHelpers().length > 0 || fds() > before); i++) await sleep(100);
  assert.deepEqual(berthdHelpers(), [], 'berthd keeps no helper process');
  assert.ok(fds() <= before, `berthd had ${before} descriptors before and ${fds()} after the vanished clients`);
});

test("berthctl --transport websocket against containerd's streaming server: exec -i, exec -t, port-forward", { skip: containerTestSkip || (!existsSync(CONTAINERD) ? 'containerd is not installed' : !existsSync('/usr/bin/catatonit') ? 'catatonit is not installed' : false) }, async (t) => {
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
  const sandbox = { metadata: { name: 'ws-pod', namespace: 'test', uid: 'ws-pod-uid', attempt: 0 }, hostname: 'ws-pod' };
  const { podSandboxId } = await runtime.runPodSandbox({ config: sandbox }, { timeoutMs: 60_000 });
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId }, { timeoutMs: 60_000 }).catch(() => undefined));
  const create = async (name: string, command: string[]) => {
    const { containerId } = await runtime.createContainer({ podSandboxId, config: { metadata: { name }, image: { image }, command }, sandboxConfig: sandbox });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const sleeper = await create('sleeper', ['sleep', '600']);
  // containerd speaks v4.channel.k8s.io at most: stdin cannot be ended, so the command reads one line.
  const piped = await ctl(['exec', '--transport', 'websocket', '-i', sleeper, 'sh', '-c', 'head -n1 | tr a-z A-Z; echo oops >&2; exit 6'], 'loud\n');
  assert.deepEqual([piped.stdout, piped.stderr, piped.code], ['LOUD\n', 'oops\n', 6]);
  const big = await ctl(['exec', '--transport', 'websocket', sleeper, 'sh', '-c', 'head -c 2000000 /dev/zero | tr "\\0" y']);
  assert.equal(big.stdout.length, 2_000_000);
  // With a TTY and no stdin, containerd's WebSocket path hands the command a stdin that
  // ends at once and loses what the terminal prints after that (its SPDY path does not):
  // stdin is asked for, and stays open. containerd starts the command at once, so the
  // resize sent right after the upgrade needs a moment.
  const { url } = await runtime.exec({ containerId: sleeper, cmd: ['sh', '-c', '[ -t 1 ] && sleep 1 && busybox stty size; exit 2'], stdin: true, stdout: true, tty: true });
  let out = '';
  const stdout = new PassThrough().on('data', (d: Buffer) => (out += d.toString()));
  assert.equal(await remoteCommand(url, { transport: 'websocket', stdin: new PassThrough(), stdout, tty: true, initialSize: { width: 91, height: 33 } }), 2);
  assert.match(out, /33 91\r\n/);

  await create('server', ['nc', '-ll', '-p', '8082', '-e', 'cat']);
  await sleep(300);
  const child = spawn(process.execPath, [BERTHCTL, '-r', containerd.endpoint, 'port-forward', '--transport', 'websocket', podSandboxId, '0:8082'], { env: { PATH: process.env.PATH, CRI_CONFIG_FILE: '/dev/null' } });
  cleanup(t).after(() => child.kill());
  const line = await waitOutput(child, /Forwarding from/);
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
  const payloads = [randomBytes(1024 * 1024), randomBytes(300_000), randomBytes(300_000)];
  const echoes = await Promise.all(payloads.map((p) => echoThrough(port, p)));
  echoes.forEach((echo, i) => assert.equal(sha(echo), sha(payloads[i]!)));
});
