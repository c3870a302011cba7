// berth's own gRPC server on the wire, with node:http2 as the peer: what a grpc-go client
// relies on that the grpc-js and grpc-go client tests do not reach (deadlines, resets,
// early errors and their HTTP status, wording, limits, trailers-only errors, shutdown
// with a call in flight), and that berthd and berth-csi no longer load grpc-js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createJsonLogger } from '../src/util/logger.js';
import { ContainerStatusRequestSchema, RuntimeService, VersionRequestSchema, VersionResponseSchema } from '../src/gen/runtime/v1/api_pb.js';
import { GrpcServer, type GrpcServerOptions } from '../src/server/grpc-server.js';
import { frameMessage, GrpcStatus, decodeGrpcMessage } from '../src/server/grpc-wire.js';
import { implementService } from '../src/server/rpc-wrapper.js';
import { StartupGate } from '../src/server/startup-gate.js';
import { serveOnUnixSocket } from '../src/server/unix-server.js';
import { BerthError, notFound } from '../src/errors.js';
import type { RpcContext } from '../src/server/grpc-service.js';
import { CLIENT_PREFACE, encodeFrame, Flag, FrameReader, FrameType, H2Error } from '../src/server/h2-frames.js';
import { encodeHeaderBlock } from '../src/server/hpack.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';

const RUNTIME = '/runtime.v1.RuntimeService';

interface Harness {
  server: GrpcServer;
  session(settings?: http2.Settings): Promise<http2.ClientHttp2Session>;
  /** The socket's path, for raw connections. */
  socket: string;
  /** What the slow handler (PodSandboxStatus) saw: its context and its signal's abort reason. */
  slow: { ctx?: RpcContext; reason?: unknown; release?: () => void; aborted: Promise<void> };
  /** How many messages the streaming handler (GetContainerEvents) has had accepted by send. */
  streamed: { sent: number };
}

async function serve(t: test.TestContext, options: GrpcServerOptions = {}): Promise<Harness> {
  const dir = await tempDir(t, 'berth-grpc-server-');
  const gate = new StartupGate();
  gate.open();
  let abortSeen!: () => void;
  const slow: Harness['slow'] = { aborted: new Promise((done) => (abortSeen = done)) };
  const streamed = { sent: 0 };
  const server = new GrpcServer(options);
  server.addService(
    implementService(
      RuntimeService,
      {
        version: async (req) => ({ version: req.version, runtimeName: 'grpc-server-test' }),
        containerStatus: async (req) => {
          throw notFound('container', req.containerId);
        },
        // Throws before it returns a promise.
        status: () => {
          throw new BerthError('FailedPrecondition', 'thrown at once');
        },
        // 200 messages of 64 KiB each.
        getContainerEvents: async (_req, _ctx, send) => {
          for (let i = 0; i < 200; i++) {
            await send({ containerId: `${i}`.padEnd(65536, '.') });
            streamed.sent++;
          }
        },
        // Waits for release(), or for its signal.
        podSandboxStatus: (_req, ctx) => {
          slow.ctx = ctx;
          return new Promise((done, fail) => {
            slow.release = () => done({});
            ctx.signal.addEventListener('abort', () => {
              slow.reason = ctx.signal.reason;
              abortSeen();
              fail(ctx.signal.reason);
            });
          });
        },
      },
      { gate, log: createJsonLogger({ level: 'silent' }) },
    ),
  );
  const socket = join(dir, 'grpc.sock');
  const listener = await serveOnUnixSocket(server, socket);
  const sessions: http2.ClientHttp2Session[] = [];
  cleanup(t).after(async () => {
    for (const s of sessions) s.destroy();
    await server.shutdown(0);
    await listener.close();
  });
  return {
    server,
    slow,
    streamed,
    socket,
    session: async (settings?: http2.Settings) => {
      const session = http2.connect('http://localhost', { createConnection: () => connect(socket), settings, maxSendHeaderBlockLength: 1 << 20 });
      session.on('error', () => undefined);
      sessions.push(session);
      await new Promise<void>((done, fail) => {
        session.once('connect', () => done());
        session.once('error', fail);
      });
      return session;
    },
  };
}

interface Reply {
  headers: http2.IncomingHttpHeaders;
  trailers?: http2.IncomingHttpHeaders;
  data: Buffer;
  /** The RST_STREAM code the stream closed with (0: none or NO_ERROR). */
  rstCode: number;
}

function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): { stream: http2.ClientHttp2Stream; reply: Promise<Reply> } {
  const stream = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
  stream.on('error', () => undefined);
  const reply = new Promise<Reply>((done) => {
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (h) => (trailers = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('close', () => done({ headers: responseHeaders, trailers, data: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 }));
  });
  if (body) stream.end(body);
  return { stream, reply };
}

const versionBody = (version = 'v1') => frameMessage(toBinary(VersionRequestSchema, create(VersionRequestSchema, { version })));

test('a unary call: :status 200, application/grpc, one message, grpc-status 0 in trailers', async (t) => {
  const h = await serve(t);
  const session = await h.session();
  const { reply } = request(session, { ':path': `${RUNTIME}/Version` }, versionBody('0.1.0'));
  const r = await reply;
  assert.equal(r.headers[':status'], 200);
  assert.equal(r.headers['content-type'], 'application/grpc');
  assert.equal(r.headers['grpc-status'], undefined, 'the status comes in trailers');
  assert.equal(r.data[0], 0, 'not compressed');
  assert.equal(r.data.readUInt32BE(1), r.data.length - 5);
  const response = fromBinary(VersionResponseSchema, r.data.subarray(5));
  assert.equal(response.runtimeName, 'grpc-server-test');
  assert.equal(response.version, '0.1.0');
  assert.equal(r.trailers?.['grpc-status'], '0');
  // A PING (grpc-go's keepalive and BDP probes) is answered.
  const payload = Buffer.from('berthpng');
  const echoed = await new Promise<Buffer>((done, fail) => session.ping(payload, (err, _ms, back) => (err ? fail(err) : done(back))));
  assert.deepEqual(echoed, payload);
});

test('an error is one trailers-only HEADERS frame with a percent-encoded grpc-message', async (t) => {
  const h = await serve(t);
  const body = frameMessage(toBinary(ContainerStatusRequestSchema, create(ContainerStatusRequestSchema, { containerId: 'café 100%' })));
  const r = await request(await h.session(), { ':path': `${RUNTIME}/ContainerStatus` }, body).reply;
  assert.equal(r.headers[':status'], 200);
  assert.equal(r.headers['content-type'], 'application/grpc');
  assert.equal(r.headers['grpc-status'], String(GrpcStatus.NOT_FOUND));
  assert.equal(r.headers['grpc-message'], 'container "caf%C3%A9 100%25" not found');
  assert.equal(decodeGrpcMessage(r.headers['grpc-message'] as string), 'container "café 100%" not found');
  assert.equal(r.trailers, undefined, 'no separate trailers');
  assert.equal(r.data.length, 0);
  const thrown = await request(await h.session(), { ':path': `${RUNTIME}/Status` }, frameMessage(new Uint8Array())).reply;
  assert.equal(thrown.headers['grpc-status'], String(GrpcStatus.FAILED_PRECONDITION));
  assert.equal(thrown.headers['grpc-message'], 'thrown at once');
});

test("unknown services and methods get UNIMPLEMENTED in grpc-go's words; a handler left out too", async (t) => {
  const h = await serve(t);
  const session = await h.session();
  const unknownService = await request(session, { ':path': '/runtime.v9.Nothing/Version' }, versionBody()).reply;
  assert.equal(unknownService.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  assert.equal(unknownService.headers['grpc-message'], 'unknown service runtime.v9.Nothing');
  const unknownMethod = await request(session, { ':path': `${RUNTIME}/Nope` }, versionBody()).reply;
  assert.equal(unknownMethod.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  assert.equal(unknownMethod.headers['grpc-message'], 'unknown method Nope for service runtime.v1.RuntimeService');
  const malformed = await request(session, { ':path': '/Version' }, versionBody()).reply;
  assert.equal(malformed.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  assert.equal(malformed.headers['grpc-message'], 'malformed method name: "/Version"');
  const leftOut = await request(session, { ':path': `${RUNTIME}/RemoveContainer` }, frameMessage(new Uint8Array())).reply;
  assert.equal(leftOut.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  assert.match(decodeGrpcMessage(leftOut.headers['grpc-message'] as string), /RemoveContainer is not implemented/);
});

test('early aborts carry the HTTP status grpc-go sends: 415 content type, 405 method, 400 grpc-timeout', async (t) => {
  const h = await serve(t);
  const session = await h.session();
  const json = await request(session, { ':path': `${RUNTIME}/Version`, 'content-type': 'application/json' }, versionBody()).reply;
  assert.equal(json.headers[':status'], 415);
  assert.equal(json.headers['grpc-status'], String(GrpcStatus.INVALID_ARGUMENT));
  assert.equal(decodeGrpcMessage(json.headers['grpc-message'] as string), 'invalid gRPC request content-type "application/json"');
  // application/grpcfoo is not gRPC; application/grpc+proto is.
  assert.equal((await request(session, { ':path': `${RUNTIME}/Version`, 'content-type': 'application/grpcfoo' }, versionBody()).reply).headers[':status'], 415);
  const proto = await request(session, { ':path': `${RUNTIME}/Version`, 'content-type': 'application/grpc+proto' }, versionBody()).reply;
  assert.equal(proto.trailers?.['grpc-status'], '0');
  const put = await request(session, { ':path': `${RUNTIME}/Version`, ':method': 'PUT' }, versionBody()).reply;
  assert.equal(put.headers[':status'], 405);
  assert.equal(put.headers['grpc-status'], String(GrpcStatus.INTERNAL));
  assert.equal(decodeGrpcMessage(put.headers['grpc-message'] as string), 'Received a HEADERS frame with :method "PUT" which should be POST');
  const timeout = await request(session, { ':path': `${RUNTIME}/Version`, 'grpc-timeout': '1x' }, versionBody()).reply;
  assert.equal(timeout.headers[':status'], 400);
  assert.equal(timeout.headers['grpc-status'], String(GrpcStatus.INTERNAL));
});

test('a request over the limit gets RESOURCE_EXHAUSTED, a compressed one UNIMPLEMENTED, a cut one INTERNAL', async (t) => {
  const h = await serve(t, { maxReceiveMessageBytes: 1024 });
  const session = await h.session();
  const big = frameMessage(toBinary(VersionRequestSchema, create(VersionRequestSchema, { version: 'x'.repeat(100_000) })));
  const oversize = await request(session, { ':path': `${RUNTIME}/Version` }, big).reply;
  assert.equal(oversize.headers['grpc-status'], String(GrpcStatus.RESOURCE_EXHAUSTED));
  assert.match(decodeGrpcMessage(oversize.headers['grpc-message'] as string), /received message larger than max \(100\d+ vs\. 1024\)/);
  const compressed = versionBody();
  compressed[0] = 1;
  const zipped = await request(session, { ':path': `${RUNTIME}/Version`, 'grpc-encoding': 'gzip' }, compressed).reply;
  assert.equal(zipped.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  const cut = await request(session, { ':path': `${RUNTIME}/Version` }, versionBody().subarray(0, 6)).reply;
  assert.equal(cut.headers['grpc-status'], String(GrpcStatus.INTERNAL));
  // The session still serves.
  assert.equal((await request(session, { ':path': `${RUNTIME}/Version` }, versionBody()).reply).trailers?.['grpc-status'], '0');
});

test('grpc-timeout: ctx.deadline is set, and at the deadline the call ends DEADLINE_EXCEEDED and the signal aborts', async (t) => {
  const h = await serve(t);
  const started = Date.now();
  const r = await request(await h.session(), { ':path': `${RUNTIME}/PodSandboxStatus`, 'grpc-timeout': '150m' }, frameMessage(new Uint8Array())).reply;
  const took = Date.now() - started;
  assert.equal(r.headers['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
  assert.ok(took >= 140 && took < 5000, `ended after ${took} ms`);
  const deadline = h.slow.ctx?.deadline?.getTime() ?? 0;
  assert.ok(Math.abs(deadline - (started + 150)) < 100, `deadline ${deadline - started} ms after the call began`);
  await h.slow.aborted;
  assert.ok(h.slow.reason instanceof BerthError && h.slow.reason.code === 'DeadlineExceeded', String(h.slow.reason));
});

test("a client's RST_STREAM aborts the handler's signal as Cancelled", async (t) => {
  const h = await serve(t);
  const { stream, reply } = request(await h.session(), { ':path': `${RUNTIME}/PodSandboxStatus` }, frameMessage(new Uint8Array()));
  while (!h.slow.ctx) await new Promise((r) => setTimeout(r, 5));
  assert.equal(h.slow.ctx.deadline, undefined);
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await reply;
  await h.slow.aborted;
  assert.ok(h.slow.reason instanceof BerthError && h.slow.reason.code === 'Cancelled', String(h.slow.reason));
});

test('server streaming: send waits while the client does not read, and every message arrives once it does', async (t) => {
  const h = await serve(t);
  const { stream, reply } = request(await h.session(), { ':path': `${RUNTIME}/GetContainerEvents` }, frameMessage(new Uint8Array()));
  stream.pause();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(h.streamed.sent < 20, `${h.streamed.sent} of 200 messages of 64 KiB accepted while the client read nothing`);
  stream.resume();
  const r = await reply;
  assert.equal(r.trailers?.['grpc-status'], '0');
  assert.equal(h.streamed.sent, 200);
  assert.equal(r.data.length, 200 * (5 + 1 + 3 + 65536), '200 frames of a ContainerEventResponse with a 64 KiB container_id');
});

test('shutdown: GOAWAY, the call in flight finishes, no new call is taken, then the connection ends', async (t) => {
  const h = await serve(t);
  const session = await h.session();
  const goaway = new Promise<number>((done) => session.once('goaway', (code) => done(code)));
  const closed = new Promise<void>((done) => session.once('close', () => done()));
  const inFlight = request(session, { ':path': `${RUNTIME}/PodSandboxStatus` }, frameMessage(new Uint8Array())).reply;
  while (!h.slow.release) await new Promise((r) => setTimeout(r, 5));
  let shutDown = false;
  const shutdown = h.server.shutdown(10_000).then(() => (shutDown = true));
  assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
  assert.throws(() => session.request({ ':method': 'POST', ':path': `${RUNTIME}/Version`, 'content-type': 'application/grpc' }), { code: 'ERR_HTTP2_GOAWAY_SESSION' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(shutDown, false, 'shutdown waits for the call in flight');
  h.slow.release();
  const r = await inFlight;
  assert.equal(r.trailers?.['grpc-status'], '0');
  await shutdown;
  await closed;
});

test('berthd and berth-csi load neither @grpc/grpc-js nor node:http2 (their static import graphs)', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    // Static imports only; `import type` is erased by tsc.
    for (const match of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)) {
      const spec = match[1] ?? match[2]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else packages.add(spec);
    }
  };
  visit(join(here, '..', 'src', 'bin', 'berthd.js'));
  visit(join(here, '..', 'src', 'bin', 'berth-csi.js'));
  assert.ok(seen.size > 50, `walked ${seen.size} modules`);
  assert.ok(!packages.has('node:http2'), 'the server side is berth\'s own HTTP/2 transport');
  assert.ok(!packages.has('hpack.js'));
  assert.ok(![...packages].some((p) => p.startsWith('@grpc/')), [...packages].join(' '));
});

test('flow control: a response over 64 KiB waits for a small peer window, a request over the stream window gets WINDOW_UPDATEs', async (t) => {
  const h = await serve(t, { maxReceiveMessageBytes: 8 * 1024 * 1024 });
  // The client announces a 16 KiB stream window: the server must stop at it and wait for WINDOW_UPDATE.
  const session = await h.session({ initialWindowSize: 16384 });
  const version = 'v'.repeat(3 * 1024 * 1024);
  const { stream, reply } = request(session, { ':path': `${RUNTIME}/Version` }, versionBody(version));
  let received = 0;
  stream.on('data', (c: Buffer) => (received += c.length));
  stream.pause();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(received <= 16384 + 65536, `${received} octets arrived while the client read nothing`);
  stream.resume();
  const r = await reply;
  assert.equal(r.trailers?.['grpc-status'], '0');
  assert.equal(fromBinary(VersionResponseSchema, r.data.subarray(5)).version, version, 'a 3 MiB request (over the 1 MiB stream window) and its echo');
});

test('a header block over the frame size comes in CONTINUATION frames; HPACK with Huffman and the dynamic table across requests', async (t) => {
  const h = await serve(t);
  const session = await h.session();
  // 40 KB of header: nghttp2 sends HEADERS and CONTINUATION frames.
  const big = await request(session, { ':path': `${RUNTIME}/Version`, 'x-berth-big': 'b'.repeat(40_000) }, versionBody('continued')).reply;
  assert.equal(big.trailers?.['grpc-status'], '0');
  assert.equal(fromBinary(VersionResponseSchema, big.data.subarray(5)).version, 'continued');
  // nghttp2 Huffman-codes strings and indexes fields in its dynamic table; the unknown
  // method's name comes back in the status, so each request's :path was decoded right.
  for (const method of ['NoSuchA', 'NoSuchB', 'NoSuchA', 'NoSuchB', 'NoSuchA']) {
    const r = await request(session, { ':path': `${RUNTIME}/${method}`, 'x-berth-trace': 'same-value-each-time' }, versionBody()).reply;
    assert.equal(decodeGrpcMessage(r.headers['grpc-message'] as string), `unknown method ${method} for service runtime.v1.RuntimeService`);
  }
  assert.equal((await request(session, { ':path': `${RUNTIME}/Version` }, versionBody()).reply).trailers?.['grpc-status'], '0');
});

/** A raw connection: writes bytes, and collects the frames the server sends until it closes. */
async function rawConnection(path: string, bytes: Buffer): Promise<{ type: number; flags: number; streamId: number; payload: Buffer }[]> {
  const socket = connect(path);
  const frames: { type: number; flags: number; streamId: number; payload: Buffer }[] = [];
  const reader = new FrameReader(1 << 24);
  socket.on('data', (chunk: Buffer) => reader.push(chunk, (type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: Buffer.from(payload) }), () => false));
  socket.write(bytes);
  await new Promise<void>((done) => {
    socket.on('close', () => done());
    socket.on('error', () => done());
    setTimeout(() => socket.destroy(), 3000).unref();
  });
  return frames;
}

const goAwayOf = (frames: { type: number; payload: Buffer }[]) => {
  const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
  assert.ok(goaway, `frames: ${frames.map((f) => f.type).join(',')}`);
  return { last: goaway.payload.readUInt32BE(0), code: goaway.payload.readUInt32BE(4), debug: goaway.payload.subarray(8).toString() };
};

test('protocol errors: GOAWAY with the code, then the connection ends', async (t) => {
  const h = await serve(t);
  const settings = encodeFrame(FrameType.SETTINGS, 0, 0);
  // Not HTTP/2 at all.
  const http1 = await rawConnection(h.socket, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(http1[0]?.type, FrameType.SETTINGS, 'the server preface first');
  assert.equal(goAwayOf(http1).code, H2Error.PROTOCOL_ERROR);
  // DATA on stream 0.
  const data0 = await rawConnection(h.socket, Buffer.concat([CLIENT_PREFACE, settings, encodeFrame(FrameType.DATA, 0, 0, Buffer.from('x'))]));
  assert.equal(goAwayOf(data0).code, H2Error.PROTOCOL_ERROR);
  assert.ok(data0.some((f) => f.type === FrameType.SETTINGS && f.flags & Flag.ACK), 'the client SETTINGS was acknowledged');
  // A frame over the announced SETTINGS_MAX_FRAME_SIZE (16384).
  const huge = await rawConnection(h.socket, Buffer.concat([CLIENT_PREFACE, settings, encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(20_000))]));
  assert.equal(goAwayOf(huge).code, H2Error.FRAME_SIZE_ERROR);
  // A header block HPACK cannot decode (index 70 of an empty dynamic table).
  const badBlock = await rawConnection(h.socket, Buffer.concat([CLIENT_PREFACE, settings, encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0x80 | 70]))]));
  assert.equal(goAwayOf(badBlock).code, H2Error.COMPRESSION_ERROR);
  // A CONTINUATION interrupted by another frame.
  const headers = encodeHeaderBlock([[':method', 'POST'], [':path', `${RUNTIME}/Version`], ['content-type', 'application/grpc']]);
  const cut = await rawConnection(
    h.socket,
    Buffer.concat([CLIENT_PREFACE, settings, encodeFrame(FrameType.HEADERS, 0, 1, headers.subarray(0, 3)), encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))]),
  );
  assert.equal(goAwayOf(cut).code, H2Error.PROTOCOL_ERROR);
  // A WINDOW_UPDATE of 0 on the connection.
  const zero = await rawConnection(h.socket, Buffer.concat([CLIENT_PREFACE, settings, encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(4))]));
  assert.equal(goAwayOf(zero).code, H2Error.PROTOCOL_ERROR);
});

test('raw frames: padding, priority and CONTINUATION are read; the answer is HEADERS, DATA and trailers', async (t) => {
  const h = await serve(t);
  const block = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', `${RUNTIME}/Version`], [':authority', '/run/some/socket.sock'], ['content-type', 'application/grpc']]);
  // HEADERS with PADDED and PRIORITY, the block split over a CONTINUATION; DATA padded.
  const headersPayload = Buffer.concat([Buffer.from([4]), Buffer.from([0, 0, 0, 0, 16]), block.subarray(0, 10), Buffer.alloc(4)]);
  const body = versionBody('raw');
  const dataPayload = Buffer.concat([Buffer.from([3]), body, Buffer.alloc(3)]);
  const goaway = encodeFrame(FrameType.GOAWAY, 0, 0, Buffer.alloc(8));
  const frames = await rawConnection(
    h.socket,
    Buffer.concat([
      CLIENT_PREFACE,
      encodeFrame(FrameType.SETTINGS, 0, 0),
      encodeFrame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 1, headersPayload),
      encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(10)),
      encodeFrame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, dataPayload),
      // The client's GOAWAY: the server ends the connection once the call is answered.
      goaway,
    ]),
  );
  const onStream = frames.filter((f) => f.streamId === 1);
  assert.deepEqual(
    onStream.map((f) => [f.type, f.flags]),
    [
      [FrameType.HEADERS, Flag.END_HEADERS],
      [FrameType.DATA, 0],
      [FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM],
    ],
  );
  assert.equal(fromBinary(VersionResponseSchema, onStream[1]!.payload.subarray(5)).version, 'raw');
  assert.ok(!frames.some((f) => f.type === FrameType.GOAWAY && f.payload.readUInt32BE(4) !== 0), 'no protocol error');
});

test('a stream over SETTINGS_MAX_CONCURRENT_STREAMS is refused (RST_STREAM REFUSED_STREAM); the others are served', async (t) => {
  const h = await serve(t, { maxConcurrentStreams: 1 });
  const block = (path: string) => encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', path], ['content-type', 'application/grpc']]);
  const frames = await rawConnection(
    h.socket,
    Buffer.concat([
      CLIENT_PREFACE,
      encodeFrame(FrameType.SETTINGS, 0, 0),
      // Stream 1 open (its request not sent yet), then stream 3: one too many.
      encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, block(`${RUNTIME}/Version`)),
      encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, block(`${RUNTIME}/Version`)),
      encodeFrame(FrameType.DATA, Flag.END_STREAM, 1, versionBody('first')),
      encodeFrame(FrameType.GOAWAY, 0, 0, Buffer.alloc(8)),
    ]),
  );
  const settings = frames.find((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK));
  assert.ok(settings && settings.payload.readUInt16BE(0) === 3 && settings.payload.readUInt32BE(2) === 1, 'SETTINGS_MAX_CONCURRENT_STREAMS 1 announced');
  const reset = frames.find((f) => f.type === FrameType.RST_STREAM && f.streamId === 3);
  assert.equal(reset?.payload.readUInt32BE(0), H2Error.REFUSED_STREAM);
  const data = frames.find((f) => f.type === FrameType.DATA && f.streamId === 1);
  assert.equal(fromBinary(VersionResponseSchema, data!.payload.subarray(5)).version, 'first');
});

test('a unary answer over the frame size: HEADERS, DATA frames of at most 16384 octets that rejoin to the message, trailers', async (t) => {
  const h = await serve(t);
  const block = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', `${RUNTIME}/Version`], ['content-type', 'application/grpc']]);
  const version = 'w'.repeat(40_000);
  const body = versionBody(version);
  const frames = await rawConnection(
    h.socket,
    Buffer.concat([
      CLIENT_PREFACE,
      encodeFrame(FrameType.SETTINGS, 0, 0),
      encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, block),
      // The request in frames of the default size too.
      ...[0, 16384, 32768].map((at) => encodeFrame(FrameType.DATA, at === 32768 ? Flag.END_STREAM : 0, 1, body.subarray(at, at + 16384))),
      encodeFrame(FrameType.GOAWAY, 0, 0, Buffer.alloc(8)),
    ]),
  );
  const onStream = frames.filter((f) => f.streamId === 1);
  const data = onStream.filter((f) => f.type === FrameType.DATA);
  assert.deepEqual(onStream.map((f) => f.type), [FrameType.HEADERS, ...data.map(() => FrameType.DATA), FrameType.HEADERS]);
  const total = data.reduce((sum, f) => sum + f.payload.length, 0);
  assert.ok(total > 40_000);
  assert.deepEqual(data.map((f) => f.payload.length), [16384, 16384, total - 2 * 16384], 'full frames, then the rest');
  assert.ok(data.every((f) => f.flags === 0) && onStream.at(-1)!.flags === (Flag.END_HEADERS | Flag.END_STREAM));
  const message = Buffer.concat(data.map((f) => f.payload));
  assert.equal(message.readUInt32BE(1), message.length - 5);
  assert.equal(fromBinary(VersionResponseSchema, message.subarray(5)).version, version);
});
