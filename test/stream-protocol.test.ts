// The streaming protocols without root: SPDY frames and header compression (checked
// against Node's own zlib with the SPDY/3 dictionary), sessions over a socket pair,
// the remote-command status, resize parsing and the token cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import * as zlib from 'node:zlib';
import { PassThrough, Readable } from 'node:stream';
import { createJsonLogger } from '../src/util/logger.js';
import {
  controlFrame, dataFrame, decodeHeaderBlock, type SpdyHeaders, encodeHeaderBlock, FrameReader, HeaderCompressor, HeaderDecompressor, SpdySession,
} from '../src/stream/spdy.js';
import { SPDY3_DICTIONARY } from '../src/stream/spdy-dictionary.js';
import { errorPayload, negotiateProtocol, ResizeDecoder, statusFor } from '../src/stream/remote-command.js';
import { ExitCodeError } from '../src/stream/backends.js';
import { TokenCache } from '../src/stream/token-cache.js';
import { StreamServer } from '../src/stream/server.js';
import { exitCodeFromErrorStream, remoteCommand } from '../src/cli/stream-client.js';

test('the SPDY/3 dictionary is the 1423 bytes of the draft', () => {
  assert.equal(SPDY3_DICTIONARY.length, 1423);
  assert.equal(SPDY3_DICTIONARY.subarray(0, 11).toString('latin1'), '\x00\x00\x00\x07options');
  assert.ok(SPDY3_DICTIONARY.toString('latin1').endsWith('utf-,*,enq=0.'));
});

test('header blocks: encoded, compressed as one zlib stream, read back by zlib itself and by berth', async () => {
  const compressor = new HeaderCompressor();
  const blocks: SpdyHeaders[] = [{ streamtype: 'error' }, { streamtype: 'data', port: '8080', requestid: '0' }, {}];
  const compressed = blocks.map((b) => compressor.compress(encodeHeaderBlock(b)));
  // zlib with the dictionary inflates the concatenation (one stream across frames).
  const inflated = zlib.inflateSync(Buffer.concat(compressed), { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.ok(inflated.equals(Buffer.concat(blocks.map(encodeHeaderBlock))));
  const decompressor = new HeaderDecompressor();
  for (const [i, block] of compressed.entries()) assert.deepEqual(decodeHeaderBlock(await decompressor.decompress(block)), blocks[i]);
  decompressor.close();
  // Names are lowercased on the wire (Go's framer refuses others).
  assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock({ StreamType: 'stdout' })), { streamtype: 'stdout' });
});

test("a peer's zlib-compressed header blocks (best compression, sync flushes) are read in order", async () => {
  const deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (d: Buffer) => chunks.push(d));
  const decompressor = new HeaderDecompressor();
  const all: SpdyHeaders[] = [{ streamtype: 'stdin' }, { streamtype: 'stdout' }, { streamtype: 'stdout', extra: 'x'.repeat(3000) }];
  for (const headers of all) {
    chunks.length = 0;
    deflate.write(encodeHeaderBlock(headers));
    await new Promise<void>((resolve) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(decodeHeaderBlock(await decompressor.decompress(Buffer.concat(chunks))), headers);
  }
  decompressor.close();
});

test('frames: control and data frames split from arbitrary chunks', () => {
  const bytes = Buffer.concat([controlFrame(9, 0, Buffer.from([0, 0, 0, 1, 0, 0, 0x80, 0])), dataFrame(3, 1, Buffer.from('hello')), dataFrame(5, 0, Buffer.alloc(0))]);
  assert.equal(bytes.readUInt16BE(0), 0x8003);
  const reader = new FrameReader();
  const frames = [...bytes].flatMap((b) => reader.push(Buffer.from([b])));
  assert.equal(frames.length, 3);
  assert.deepEqual(frames[0], { kind: 'control', type: 9, flags: 0, payload: Buffer.from([0, 0, 0, 1, 0, 0, 0x80, 0]) });
  assert.deepEqual(frames[1], { kind: 'data', streamId: 3, flags: 1, data: Buffer.from('hello') });
  assert.throws(() => new FrameReader().push(Buffer.from([0x80, 0x02, 0, 1, 0, 0, 0, 0])), /unsupported SPDY version 2/);
});

async function socketPair(): Promise<[Socket, Socket]> {
  return new Promise((resolve) => {
    const server = createServer((accepted) => {
      server.close();
      resolve([client, accepted]);
    });
    let client: Socket;
    server.listen(0, '127.0.0.1', () => (client = connect((server.address() as { port: number }).port, '127.0.0.1')));
  });
}

test('sessions: streams open, carry data both ways past the window with flow control, and half-close', async () => {
  const [a, b] = await socketPair();
  const client = new SpdySession(a, 'client');
  const server = new SpdySession(b, 'server');
  server.on('stream', (stream) => {
    stream.reply();
    stream.pipe(stream); // echo
  });
  const stream = await client.openStream({ streamtype: 'data' });
  const payload = Buffer.alloc(1024 * 1024, 7);
  const received: Buffer[] = [];
  stream.on('data', (d: Buffer) => received.push(d));
  const ended = new Promise((r) => stream.on('end', r));
  stream.end(payload);
  await ended;
  assert.ok(Buffer.concat(received).equals(payload));
  assert.ok(server.peerFlowControl, 'the client announced its window');
  client.close();
  server.destroy();
});

test('sessions: data received before the peer closes the connection is still read by a slow reader', async () => {
  const [a, b] = await socketPair();
  const client = new SpdySession(a, 'client');
  const server = new SpdySession(b, 'server');
  // Less than a window: the server finishes writing without waiting for the reader.
  const payload = Buffer.alloc(32 * 1024, 9);
  server.on('stream', (stream) => {
    stream.reply();
    // Everything written, then the connection closed at once (as a server does after the
    // error stream's status).
    stream.end(payload, () => setImmediate(() => server.destroy()));
  });
  const stream = await client.openStream({ streamtype: 'stdout' });
  stream.end();
  // A reader that starts late: the connection is gone by then.
  await new Promise<void>((resolve) => client.once('close', () => resolve()));
  const received: Buffer[] = [];
  for await (const chunk of stream) received.push(chunk as Buffer);
  assert.equal(Buffer.concat(received).length, payload.length);
});

test('remote-command status: success, exit codes, other failures, per protocol version', () => {
  assert.deepEqual(statusFor(undefined), { metadata: {}, status: 'Success' });
  const exit = statusFor(new ExitCodeError(3));
  assert.equal(exit.reason, 'NonZeroExitCode');
  assert.deepEqual(exit.details, { causes: [{ reason: 'ExitCode', message: '3' }] });
  assert.equal(exitCodeFromErrorStream('v4.channel.k8s.io', errorPayload('v4.channel.k8s.io', new ExitCodeError(42))!), 42);
  assert.equal(exitCodeFromErrorStream('v4.channel.k8s.io', errorPayload('v4.channel.k8s.io', undefined)!), 0);
  assert.throws(() => exitCodeFromErrorStream('v4.channel.k8s.io', errorPayload('v4.channel.k8s.io', new Error('no such container'))!), /no such container/);
  assert.equal(errorPayload('v3.channel.k8s.io', undefined), undefined);
  assert.equal(negotiateProtocol(['v5.channel.k8s.io, v4.channel.k8s.io', 'v3.channel.k8s.io'], ['v4.channel.k8s.io', 'v3.channel.k8s.io']), 'v4.channel.k8s.io');
  assert.equal(negotiateProtocol('v9.channel.k8s.io', ['v4.channel.k8s.io']), undefined);
  assert.equal(negotiateProtocol(undefined, ['v4.channel.k8s.io']), '');
});

test('resize messages: concatenated JSON objects, split anywhere', () => {
  const decoder = new ResizeDecoder();
  const text = '{"Width":80,"Height":24}{"Width":120,"Height":40}';
  const sizes = [...text].flatMap((c) => decoder.push(c));
  assert.deepEqual(sizes, [{ width: 80, height: 24 }, { width: 120, height: 40 }]);
});

test('tokens are single-use and expire', () => {
  let now = 0;
  const cache = new TokenCache<string>(60_000, () => now);
  const token = cache.insert('a');
  assert.match(token, /^[A-Za-z0-9_-]{11}$/);
  assert.equal(cache.consume(token), 'a');
  assert.equal(cache.consume(token), undefined);
  const late = cache.insert('b');
  now = 60_001;
  assert.equal(cache.consume(late), undefined);
  assert.equal(cache.consume('unknown'), undefined);
});

test('the streaming server closes a connection that sends no whole request by its deadline, and not one that upgraded', async () => {
  const server = new StreamServer({
    address: '127.0.0.1',
    port: 0,
    requestDeadlineMs: 300,
    log: createJsonLogger({ level: 'silent' }),
    backends: {
      exec: async (_request, io) => {
        for await (const chunk of io.stdin!) io.stdout!.write(chunk);
        return 0;
      },
      attach: async () => undefined,
      portForward: async () => undefined,
    },
  });
  await server.start();
  try {
    const { port } = new URL(server.baseUrl);
    const silent = connect(Number(port), '127.0.0.1');
    silent.write('GET /exec/x HTTP/1.1\r\nHost: x\r\n'); // headers never finished
    const started = Date.now();
    const closed = await Promise.race([
      new Promise<boolean>((resolve) => silent.on('close', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(resolve, 5_000, false)),
    ]);
    silent.destroy();
    const waited = Date.now() - started;
    assert.ok(closed && waited >= 250, `closed: ${closed}, after ${waited} ms`);
    // An exec that outlives the deadline goes on.
    const url = server.execUrl({ containerId: 'c', cmd: ['cat'], tty: false, stdin: true, stdout: true, stderr: false });
    const out: Buffer[] = [];
    const stdin = new PassThrough();
    const done = remoteCommand(url, { stdin, stdout: new PassThrough().on('data', (d: Buffer) => out.push(d)), tty: false });
    stdin.write('before ');
    await new Promise((resolve) => setTimeout(resolve, 600));
    stdin.end('after');
    assert.equal(await done, 0);
    assert.equal(Buffer.concat(out).toString(), 'before after');
  } finally {
    await server.stop();
  }
});

test('the streaming server: an exec over SPDY with stdin, output and exit code; used and unknown tokens are 404', async () => {
  const server = new StreamServer({
    address: '127.0.0.1',
    port: 0,
    log: createJsonLogger({ level: 'silent' }),
    backends: {
      exec: async (request, io) => {
        io.stdout!.write(`${request.cmd.join(' ')}\n`);
        for await (const chunk of io.stdin!) io.stdout!.write(chunk);
        io.stderr!.write('bye\n');
        return 9;
      },
      attach: async () => undefined,
      portForward: async () => undefined,
    },
  });
  await server.start();
  try {
    const url = server.execUrl({ containerId: 'c', cmd: ['echo', 'hi'], tty: false, stdin: true, stdout: true, stderr: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stdout = new PassThrough().on('data', (d: Buffer) => out.push(d));
    const stderr = new PassThrough().on('data', (d: Buffer) => err.push(d));
    const code = await remoteCommand(url, { stdin: Readable.from([Buffer.from('abc')]), stdout, stderr, tty: false });
    assert.equal(code, 9);
    assert.equal(Buffer.concat(out).toString(), 'echo hi\nabc');
    assert.equal(Buffer.concat(err).toString(), 'bye\n');
    await assert.rejects(remoteCommand(url, { stdout, tty: false }), /404 page not found/);
    await assert.rejects(remoteCommand(`${server.baseUrl}/exec/nope`, { stdout, tty: false }), /404 page not found/);
  } finally {
    await server.stop();
  }
});
