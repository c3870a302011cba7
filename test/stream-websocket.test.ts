// The WebSocket streaming protocols without root: berthd's streaming server with fake
// backends, driven by berthctl's WebSocket client and by hand-made WebSocket clients
// (every subprotocol the kubelet's stream server accepts, plus v5 and the SPDY tunnel).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { PassThrough, Readable, type Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createJsonLogger } from '../src/util/logger.js';
import { WebSocket } from 'ws';
import { StreamServer } from '../src/stream/server.js';
import type { StreamBackends, TerminalSize } from '../src/stream/backends.js';
import { decodeChannelMessage, encodeChannelMessage } from '../src/stream/websocket-channels.js';
import { negotiateSubprotocol, portsFromQuery, WebSocketTunnel } from '../src/stream/websocket.js';
import { SpdySession } from '../src/stream/spdy.js';
import { portForward, remoteCommand, wsConnect } from '../src/cli/stream-client.js';

function collect() {
  const stream = new PassThrough();
  const parts: Buffer[] = [];
  stream.on('data', (d: Buffer) => parts.push(d));
  return { stream, text: () => Buffer.concat(parts).toString(), bytes: () => Buffer.concat(parts) };
}

/** A streaming server whose exec echoes its stdin (to EOF), reports resizes and exits with the command's number. */
async function startServer(extra: Partial<StreamBackends> = {}) {
  const resizes: TerminalSize[] = [];
  const aborted: string[] = [];
  const server = new StreamServer({
    address: '127.0.0.1',
    port: 0,
    log: createJsonLogger({ level: 'silent' }),
    backends: {
      exec: async (request, io) => {
        io.resize.on('resize', (size) => resizes.push(size));
        io.signal.addEventListener('abort', () => aborted.push(request.cmd.join(' ')));
        io.stdout?.write(`${request.cmd.join(' ')}\n`);
        if (io.stdin) for await (const chunk of io.stdin) io.stdout!.write(chunk);
        if (request.cmd[0] === 'wait') await new Promise((resolve) => io.signal.addEventListener('abort', resolve));
        io.stderr?.write('bye\n');
        if (request.cmd[0] === 'fail') throw new Error('no such container');
        return Number(request.cmd[1] ?? 0);
      },
      attach: async (_request, io) => {
        io.stdout!.write('attached\n');
      },
      portForward: async (_podId, port, stream) => {
        // An echo server that also names the port.
        stream.write(`port ${port}\n`);
        for await (const chunk of stream) stream.write(chunk);
      },
      ...extra,
    },
  });
  await server.start();
  return { server, resizes, aborted };
}

/**
 * A WebSocket client offering a subprotocol that is not an RFC 7230 token (ws's client
 * refuses `SPDY/3.1+portforward.k8s.io`, Go's gorilla sends it): the handshake by hand,
 * then ws's framing in client mode on the upgraded socket.
 */
async function tunnelConnect(url: string, subprotocol: string): Promise<{ ws: WebSocket; protocol: string }> {
  const req = httpRequest(url, {
    headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': subprotocol },
  });
  const [response, socket, head] = await new Promise<[IncomingMessage, Socket, Buffer]>((resolve, reject) => {
    req.on('upgrade', (res, s: Socket, h: Buffer) => resolve([res, s, h]));
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  const ws = new WebSocket(null as unknown as string, undefined, {});
  const internals = ws as unknown as { _isServer: boolean; setSocket(s: Socket, h: Buffer, o: object): void };
  internals._isServer = false;
  internals.setSocket(socket, head, { allowSynchronousEvents: true, maxPayload: 0, skipUTF8Validation: false });
  ws.pause();
  return { ws, protocol: String(response.headers['sec-websocket-protocol'] ?? '') };
}

/** A raw WebSocket client: every message it got, by channel, after the session closed. */
async function rawSession(url: string, protocols: string[], send: (ws: WebSocket, protocol: string) => void) {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
  const messages: Array<{ binary: boolean; data: Buffer }> = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => messages.push({ binary: isBinary, data }));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const protocol = ws.protocol;
  send(ws, protocol);
  const code = await new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c)));
  return { protocol, code, messages };
}

test('channel messages: binary with a channel byte, base64 with a channel digit', () => {
  assert.deepEqual(encodeChannelMessage('binary', 1, Buffer.from('hi')), Buffer.from([1, 104, 105]));
  assert.equal(encodeChannelMessage('base64', 1, Buffer.from('\n')), '1Cg==');
  assert.deepEqual(decodeChannelMessage('base64', Buffer.from('0Zm9vCg==')), { channel: 0, data: Buffer.from('foo\n') });
  assert.equal(decodeChannelMessage('base64', Buffer.from('0!!')), undefined);
  assert.equal(decodeChannelMessage('binary', Buffer.alloc(0)), undefined);
  assert.equal(negotiateSubprotocol(['v9.channel.k8s.io', 'v4.channel.k8s.io', 'v5.channel.k8s.io'], ['v5.channel.k8s.io', 'v4.channel.k8s.io']), 'v4.channel.k8s.io');
  assert.equal(negotiateSubprotocol([], ['v4.channel.k8s.io']), '');
  assert.equal(negotiateSubprotocol(['x'], ['v4.channel.k8s.io']), undefined);
  assert.deepEqual(portsFromQuery('/portforward/t?port=80&port=8080,9090'), [80, 8080, 9090]);
  assert.equal(portsFromQuery('/portforward/t'), undefined);
  assert.throws(() => portsFromQuery('/x?port=0'), /must be > 0/);
  assert.throws(() => portsFromQuery('/x?port=70000'), /unable to parse/);
});

test('exec over WebSocket v5 (berthctl): stdin ended by the close signal, stdout, stderr, exit code, resizes', async () => {
  const { server, resizes } = await startServer();
  try {
    const url = server.execUrl({ containerId: 'c', cmd: ['echo', '7'], tty: false, stdin: true, stdout: true, stderr: true });
    const out = collect();
    const err = collect();
    const code = await remoteCommand(url, { transport: 'websocket', stdin: Readable.from([Buffer.from('abc'), Buffer.from('def')]), stdout: out.stream, stderr: err.stream, tty: false });
    assert.equal(code, 7);
    assert.equal(out.text(), 'echo 7\nabcdef');
    assert.equal(err.text(), 'bye\n');
    // Used token: the upgrade is refused with 404.
    await assert.rejects(remoteCommand(url, { transport: 'websocket', stdout: out.stream, tty: false }), /404 page not found/);

    const ttyUrl = server.execUrl({ containerId: 'c', cmd: ['sh', '0'], tty: true, stdin: true, stdout: true, stderr: false });
    const resize = new (await import('node:events')).EventEmitter<{ resize: [TerminalSize] }>();
    const stdin = new PassThrough();
    const tty = collect();
    const session = remoteCommand(ttyUrl, { transport: 'websocket', stdin, stdout: tty.stream, tty: true, resize, initialSize: { width: 80, height: 24 } });
    await sleep(100);
    resize.emit('resize', { width: 120, height: 40 });
    await sleep(100);
    stdin.end('typed');
    assert.equal(await session, 0);
    assert.equal(tty.text(), 'sh 0\ntyped');
    assert.deepEqual(resizes, [{ width: 80, height: 24 }, { width: 120, height: 40 }]);

    const failing = server.execUrl({ containerId: 'c', cmd: ['fail'], tty: false, stdin: false, stdout: true, stderr: true });
    await assert.rejects(remoteCommand(failing, { transport: 'websocket', stdout: collect().stream, stderr: collect().stream, tty: false }), /no such container/);
  } finally {
    await server.stop();
  }
});

test('exec over every WebSocket subprotocol the kubelet accepts: the opening message, the status, base64', async () => {
  const { server } = await startServer();
  try {
    const request = { containerId: 'c', cmd: ['echo', '3'], tty: false, stdin: false, stdout: true, stderr: true };
    // v4 binary: an empty stdout message first, then the output, the status as JSON, a normal close.
    const v4 = await rawSession(server.execUrl(request), ['v4.channel.k8s.io'], () => undefined);
    assert.equal(v4.protocol, 'v4.channel.k8s.io');
    assert.equal(v4.code, 1000);
    assert.deepEqual(v4.messages[0], { binary: true, data: Buffer.from([1]) });
    const byChannel = (messages: Array<{ data: Buffer }>, channel: number) => Buffer.concat(messages.filter((m) => m.data[0] === channel).map((m) => m.data.subarray(1))).toString();
    assert.equal(byChannel(v4.messages, 1), 'echo 3\n');
    assert.equal(byChannel(v4.messages, 2), 'bye\n');
    const status = JSON.parse(byChannel(v4.messages, 3)) as { reason: string; details: { causes: Array<{ message: string }> } };
    assert.equal(status.reason, 'NonZeroExitCode');
    assert.equal(status.details.causes[0]!.message, '3');

    // base64: text messages, channel digits, payloads in base64.
    const b64 = await rawSession(server.execUrl(request), ['base64.channel.k8s.io'], () => undefined);
    assert.equal(b64.protocol, 'base64.channel.k8s.io');
    assert.ok(b64.messages.every((m) => !m.binary));
    const text = b64.messages.map((m) => m.data.toString());
    assert.equal(text[0], '1');
    assert.ok(text.includes(`1${Buffer.from('echo 3\n').toString('base64')}`), text.join(' '));
    // channel.k8s.io's status is the error's text: an exit code is a message.
    assert.ok(text.some((t) => t.startsWith('3') && Buffer.from(t.slice(1), 'base64').toString().includes('exit status 3')), text.join(' '));

    // v4.base64 and no subprotocol at all are accepted too.
    const v4b64 = await rawSession(server.execUrl(request), ['v4.base64.channel.k8s.io'], () => undefined);
    assert.equal(v4b64.protocol, 'v4.base64.channel.k8s.io');
    const none = await rawSession(server.execUrl(request), [], () => undefined);
    assert.equal(none.protocol, '');
    assert.deepEqual(none.messages[0]!.data, Buffer.from([1]));

    // Pre-v5 stdin cannot be ended but by the connection: the client's close ends it.
    const stdinUrl = server.execUrl({ ...request, stdin: true, cmd: ['cat', '0'] });
    const v4stdin = await rawSession(stdinUrl, ['v4.channel.k8s.io'], (ws) => {
      ws.send(Buffer.from([0, ...Buffer.from('in')]));
      // v5's close signal means nothing in v4: ignored.
      ws.send(Buffer.from([255, 0]));
      setTimeout(() => ws.close(1000), 200);
    });
    assert.equal(byChannel(v4stdin.messages, 1), 'cat 0\nin');

    // v5 by hand: the close signal ends stdin and the session ends by itself.
    const v5 = await rawSession(server.execUrl({ ...request, stdin: true, cmd: ['cat', '0'] }), ['v5.channel.k8s.io', 'v4.channel.k8s.io'], (ws) => {
      ws.send(Buffer.from([0, ...Buffer.from('five')]));
      ws.send(Buffer.from([255, 0]));
    });
    assert.equal(v5.protocol, 'v5.channel.k8s.io');
    assert.equal(byChannel(v5.messages, 1), 'cat 0\nfive');
    assert.equal(JSON.parse(byChannel(v5.messages, 3)).status, 'Success');

    // An unknown subprotocol is refused with the list of those spoken.
    await assert.rejects(wsConnect(server.execUrl(request), ['v9.channel.k8s.io']), /403|not supported/);
  } finally {
    await server.stop();
  }
});

test('a WebSocket client that goes away aborts its session', async () => {
  const { server, aborted } = await startServer();
  try {
    const url = server.execUrl({ containerId: 'c', cmd: ['wait'], tty: false, stdin: false, stdout: true, stderr: true });
    const { ws } = await wsConnect(url, ['v5.channel.k8s.io']);
    await sleep(100);
    ws.terminate();
    for (let i = 0; i < 50 && aborted.length === 0; i++) await sleep(20);
    assert.deepEqual(aborted, ['wait']);
  } finally {
    await server.stop();
  }
});

test('attach over WebSocket', async () => {
  const { server } = await startServer();
  try {
    const out = collect();
    const code = await remoteCommand(server.attachUrl({ containerId: 'c', tty: false, stdin: false, stdout: true, stderr: true }), { transport: 'websocket', stdout: out.stream, stderr: collect().stream, tty: false });
    assert.equal(code, 0);
    assert.equal(out.text(), 'attached\n');
  } finally {
    await server.stop();
  }
});

test('port-forward over WebSocket: the port prefix, data both ways, several ports, errors', async () => {
  const { server } = await startServer();
  try {
    const url = server.portForwardUrl({ podId: 'p', ports: [80] });
    // Two ports in the query: channels 0/1 and 2/3, each opened with its port (LE uint16).
    const raw = await rawSession(`${url}?port=8080&port=9090`, ['v4.channel.k8s.io'], (ws) => {
      ws.send(Buffer.from([0, ...Buffer.from('to-8080')]));
      ws.send(Buffer.from([2, ...Buffer.from('to-9090')]));
      setTimeout(() => ws.close(1000), 300);
    });
    const first = new Map<number, Buffer>();
    const rest = new Map<number, string>();
    for (const { data } of raw.messages) {
      if (!first.has(data[0]!)) first.set(data[0]!, data.subarray(1));
      else rest.set(data[0]!, (rest.get(data[0]!) ?? '') + data.subarray(1).toString());
    }
    assert.deepEqual([...first.keys()].sort(), [0, 1, 2, 3]);
    assert.equal(first.get(0)!.readUInt16LE(0), 8080);
    assert.equal(first.get(1)!.readUInt16LE(0), 8080);
    assert.equal(first.get(2)!.readUInt16LE(0), 9090);
    assert.equal(rest.get(0), 'port 8080\nto-8080');
    assert.equal(rest.get(2), 'port 9090\nto-9090');

    // berthctl's client: a local listener, one WebSocket per connection, several at once.
    const failing = await startServer({ portForward: async () => Promise.reject(new Error('connection refused')) });
    let calls = 0;
    const { server: listener } = await portForward(async () => (calls++, server.portForwardUrl({ podId: 'p', ports: [5000] })), '127.0.0.1', 0, 5000, () => undefined, 'websocket');
    const port = (listener.address() as AddressInfo).port;
    const payloads = [randomBytes(300_000), randomBytes(200_000), randomBytes(100_000)];
    const echoes = await Promise.all(
      payloads.map(
        (payload) =>
          new Promise<Buffer>((resolve, reject) => {
            const socket = connect(port, '127.0.0.1');
            const parts: Buffer[] = [];
            let size = 0;
            const expected = 'port 5000\n'.length + payload.length;
            socket.on('data', (d: Buffer) => {
              parts.push(d);
              size += d.length;
              if (size >= expected) {
                socket.destroy();
                resolve(Buffer.concat(parts));
              }
            });
            socket.on('error', reject);
            socket.write(payload);
          }),
      ),
    );
    for (const [i, echo] of echoes.entries()) {
      assert.equal(echo.subarray(0, 10).toString(), 'port 5000\n');
      assert.equal(createHash('sha256').update(echo.subarray(10)).digest('hex'), createHash('sha256').update(payloads[i]!).digest('hex'));
    }
    assert.equal(calls, 3);
    listener.close();

    const errors: string[] = [];
    const { server: listener2 } = await portForward(async () => failing.server.portForwardUrl({ podId: 'p', ports: [5001] }), '127.0.0.1', 0, 5001, (m) => errors.push(m), 'websocket');
    const socket = connect((listener2.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.on('close', resolve));
    assert.match(errors.join(''), /error forwarding port 5001 to pod p: connection refused/);
    listener2.close();
    await failing.server.stop();
  } finally {
    await server.stop();
  }
});

test('port-forward as SPDY tunneled through a WebSocket (SPDY/3.1+portforward.k8s.io)', async () => {
  const { server } = await startServer();
  try {
    const { ws, protocol } = await tunnelConnect(server.portForwardUrl({ podId: 'p', ports: [] }), 'SPDY/3.1+portforward.k8s.io');
    assert.equal(protocol, 'SPDY/3.1+portforward.k8s.io');
    const session = new SpdySession(new WebSocketTunnel(ws), 'client');
    const exchange = async (requestId: string, port: number, payload: Buffer) => {
      const error = await session.openStream({ streamtype: 'error', port: String(port), requestid: requestId });
      error.end();
      error.resume();
      const data: Duplex = await session.openStream({ streamtype: 'data', port: String(port), requestid: requestId });
      const parts: Buffer[] = [];
      data.on('data', (d: Buffer) => parts.push(d));
      data.write(payload);
      const expected = `port ${port}\n`.length + payload.length;
      while (Buffer.concat(parts).length < expected) await sleep(10);
      data.end();
      return Buffer.concat(parts);
    };
    const [a, b] = await Promise.all([exchange('0', 7000, randomBytes(200_000)), exchange('1', 7001, Buffer.from('small'))]);
    assert.equal(a.subarray(0, 10).toString(), 'port 7000\n');
    assert.equal(a.length, 10 + 200_000);
    assert.equal(b.toString(), 'port 7001\nsmall');
    session.close();
  } finally {
    await server.stop();
  }
});
