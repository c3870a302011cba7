// berth's gRPC client (src/server/grpc-client.ts) against a node:http2 peer made here,
// which answers as the test needs: request headers as grpc-go sends them, status from
// trailers and from a trailers-only HEADERS frame, deadlines (grpc-timeout and the local
// timer, RST_STREAM CANCEL), a server stream cancelled when the reader stops, a new
// session after GOAWAY, a refused stream tried again, the receive limit, and crictl's words for a missing socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, constants, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { ContainerEventResponseSchema, RuntimeService, VersionRequestSchema, VersionResponseSchema } from '../src/gen/runtime/v1/api_pb.js';
import { GrpcCallError, MAX_RECEIVE_MESSAGE_BYTES, openChannel, serviceClient, type Channel } from '../src/server/grpc-client.js';
import { encodeGrpcMessage, frameMessage, GrpcStatus, MessageDeframer } from '../src/server/grpc-wire.js';
import { cleanup } from './helpers/scope.js';
import { tempDir } from './helpers/tmp.js';

type Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, request: Buffer) => void;

interface Peer {
  endpoint: string;
  sessions: Http2Session[];
  /** Each stream's RST_STREAM code once it closed (0 when it ended normally). */
  closed: Array<Promise<number>>;
  headers: IncomingHttpHeaders[];
  server: Http2Server;
}

/** An HTTP/2 server on a unix socket; each request's body is read whole, then `handle` answers. */
async function startPeer(t: { after(fn: () => unknown): void }, handle: Handler): Promise<Peer> {
  const dir = await tempDir(t, 'grpc-client-');
  const path = join(dir, 'peer.sock');
  const sessions: Http2Session[] = [];
  const closed: Array<Promise<number>> = [];
  const headersSeen: IncomingHttpHeaders[] = [];
  const server = createServer();
  server.on('session', (session) => sessions.push(session));
  server.on('stream', (stream, headers) => {
    headersSeen.push(headers);
    closed.push(new Promise((resolve) => stream.on('close', () => resolve(stream.rstCode ?? 0))));
    const deframer = new MessageDeframer(1 << 20);
    const messages: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => messages.push(...deframer.push(chunk)));
    stream.on('error', () => undefined);
    stream.on('end', () => handle(stream, headers, messages[0] ?? Buffer.alloc(0)));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanup(t).after(async () => {
    for (const session of sessions) session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { endpoint: `unix://${path}`, sessions, closed, headers: headersSeen, server };
}

function client(t: { after(fn: () => unknown): void }, endpoint: string): { runtime: ReturnType<typeof serviceClient<typeof RuntimeService.method>>; channel: Channel } {
  const channel = openChannel(endpoint);
  cleanup(t).after(() => channel.close());
  return { runtime: serviceClient(RuntimeService, channel), channel };
}

const OK_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };

function answerVersion(stream: ServerHttp2Stream, name: string): void {
  stream.respond(OK_HEADERS, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(frameMessage(toBinary(VersionResponseSchema, create(VersionResponseSchema, { runtimeName: name, version: '0.1.0' }))));
}

test('a unary call: the request as grpc-go frames it, the answer, the status from the trailers', async (t) => {
  const peer = await startPeer(t, (stream, _headers, request) => answerVersion(stream, `for ${fromBinary(VersionRequestSchema, request).version}`));
  const { runtime } = client(t, peer.endpoint);
  const response = await runtime.version({ version: 'v1' }, { timeoutMs: 5000 });
  assert.equal(response.runtimeName, 'for v1');
  const [headers] = peer.headers;
  assert.equal(headers![':method'], 'POST');
  assert.equal(headers![':path'], '/runtime.v1.RuntimeService/Version');
  assert.equal(headers![':authority'], 'localhost');
  assert.equal(headers!['content-type'], 'application/grpc');
  assert.equal(headers!.te, 'trailers');
  assert.match(String(headers!['grpc-timeout']), /^(4\d{3}|5000)m$/);
  // Without a deadline, no grpc-timeout; the same session serves the next call.
  await runtime.version({});
  assert.equal(peer.headers[1]!['grpc-timeout'], undefined);
  assert.equal(peer.sessions.length, 1);
});

test("an error status in the trailers, or in a trailers-only HEADERS frame, is the call's code and details", async (t) => {
  const peer = await startPeer(t, (stream, headers) => {
    if (headers[':path']!.endsWith('/Version')) {
      // Trailers-only: one HEADERS frame with END_STREAM.
      stream.respond({ ...OK_HEADERS, 'grpc-status': String(GrpcStatus.NOT_FOUND), 'grpc-message': encodeGrpcMessage('container "ü 100%" not found') }, { endStream: true });
    } else {
      stream.respond(OK_HEADERS, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(GrpcStatus.FAILED_PRECONDITION), 'grpc-message': 'pod is stopping', 'x-extra': 'kept' }));
      stream.end();
    }
  });
  const { runtime } = client(t, peer.endpoint);
  await assert.rejects(runtime.version({}), (err: GrpcCallError) => {
    assert.ok(err instanceof GrpcCallError);
    assert.equal(err.code, GrpcStatus.NOT_FOUND);
    assert.equal(err.details, 'container "ü 100%" not found');
    assert.equal(err.message, '5 NOT_FOUND: container "ü 100%" not found');
    return true;
  });
  await assert.rejects(runtime.podSandboxStatus({ podSandboxId: 'p' }), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(err.details, 'pod is stopping');
    assert.equal(err.metadata['x-extra'], 'kept');
    return true;
  });
});

test('a peer that answers nothing: DEADLINE_EXCEEDED at the deadline, and the stream is reset with CANCEL', async (t) => {
  const peer = await startPeer(t, () => undefined);
  const { runtime } = client(t, peer.endpoint);
  const started = Date.now();
  await assert.rejects(runtime.version({}, { timeoutMs: 300 }), { code: GrpcStatus.DEADLINE_EXCEEDED, details: 'context deadline exceeded' });
  const took = Date.now() - started;
  assert.ok(took >= 290 && took < 3000, `took ${took} ms`);
  assert.equal(await peer.closed[0], constants.NGHTTP2_CANCEL);
});

test('a server stream is read as it comes; stopping the reader cancels the call (RST_STREAM CANCEL), cancel() fails further reads', async (t) => {
  const peer = await startPeer(t, (stream) => {
    stream.respond(OK_HEADERS);
    let n = 0;
    // An endless stream, written as fast as flow control lets it.
    const write = (): void => {
      while (!stream.destroyed && stream.write(frameMessage(toBinary(ContainerEventResponseSchema, create(ContainerEventResponseSchema, { containerId: `c${n++}` }))))) {
        if (n % 100 === 0) return void setImmediate(write);
      }
      if (!stream.destroyed) stream.once('drain', write);
    };
    write();
  });
  const { runtime } = client(t, peer.endpoint);
  const seen: string[] = [];
  for await (const event of runtime.getContainerEvents({})) {
    seen.push(event.containerId);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ['c0', 'c1', 'c2']);
  assert.equal(await peer.closed[0], constants.NGHTTP2_CANCEL);

  const events = runtime.getContainerEvents({});
  const iterator = events[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value?.containerId, 'c0');
  events.cancel();
  await assert.rejects(iterator.next(), { code: GrpcStatus.CANCELLED });
  assert.equal(await peer.closed[1], constants.NGHTTP2_CANCEL);
});

test('after GOAWAY, and after the connection closed, the next call opens a new session', async (t) => {
  let calls = 0;
  const peer = await startPeer(t, (stream) => answerVersion(stream, `call ${++calls}`));
  const { runtime } = client(t, peer.endpoint);
  assert.equal((await runtime.version({})).runtimeName, 'call 1');
  peer.sessions[0]!.goaway();
  await sleep(50);
  assert.equal((await runtime.version({})).runtimeName, 'call 2');
  assert.equal(peer.sessions.length, 2);
  peer.sessions[1]!.destroy();
  await sleep(50);
  assert.equal((await runtime.version({})).runtimeName, 'call 3');
  assert.equal(peer.sessions.length, 3);
});

test('a stream the server refused (REFUSED_STREAM, never processed) is tried once more; refused twice is UNAVAILABLE', async (t) => {
  let calls = 0;
  const peer = await startPeer(t, (stream, headers) => {
    calls++;
    if (headers[':path']!.endsWith('/Version') && calls === 1) stream.close(constants.NGHTTP2_REFUSED_STREAM);
    else if (headers[':path']!.endsWith('/Status')) stream.close(constants.NGHTTP2_REFUSED_STREAM);
    else answerVersion(stream, `call ${calls}`);
  });
  const { runtime } = client(t, peer.endpoint);
  assert.equal((await runtime.version({}, { timeoutMs: 5000 })).runtimeName, 'call 2');
  await assert.rejects(runtime.status({}), { code: GrpcStatus.UNAVAILABLE });
  assert.equal(calls, 4);
});

test('a connection that drops mid-call is UNAVAILABLE; a non-gRPC answer gets its HTTP status mapped', async (t) => {
  const peer = await startPeer(t, (stream, headers) => {
    if (headers[':path']!.endsWith('/Version')) stream.session!.destroy();
    else stream.respond({ ':status': 404, 'content-type': 'text/plain' }, { endStream: true });
  });
  const { runtime } = client(t, peer.endpoint);
  await assert.rejects(runtime.version({}), { code: GrpcStatus.UNAVAILABLE });
  await assert.rejects(runtime.status({}), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.UNIMPLEMENTED);
    assert.match(err.details, /HTTP status code .*404/);
    return true;
  });
});

test('a message over 64 MiB is refused with RESOURCE_EXHAUSTED', async (t) => {
  const peer = await startPeer(t, (stream) => {
    stream.respond(OK_HEADERS);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(MAX_RECEIVE_MESSAGE_BYTES + 1, 1);
    stream.write(Buffer.concat([header, Buffer.alloc(1024)]));
  });
  const { runtime } = client(t, peer.endpoint);
  await assert.rejects(runtime.version({}, { timeoutMs: 5000 }), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(err.details, /larger than max \(67108865 vs\. 67108864\)/);
    return true;
  });
  assert.equal(await peer.closed[0], constants.NGHTTP2_CANCEL);
});

test("no socket, or a file that is not one: UNAVAILABLE in grpc-go's words; the channel works once the server is there", async (t) => {
  const dir = await tempDir(t, 'grpc-client-none-');
  const missing = join(dir, 'none.sock');
  const { runtime } = client(t, `unix://${missing}`);
  await assert.rejects(runtime.version({}), {
    code: GrpcStatus.UNAVAILABLE,
    details: `connection error: dial unix ${missing}: connect: no such file or directory`,
  });
  await writeFile(join(dir, 'file'), '');
  const { runtime: notSocket } = client(t, join(dir, 'file'));
  await assert.rejects(notSocket.version({}), {
    code: GrpcStatus.UNAVAILABLE,
    details: `connection error: dial unix ${join(dir, 'file')}: connect: connection refused`,
  });
  // The same channel connects once there is a server on its path.
  const server = createServer();
  server.on('stream', (stream) => {
    stream.resume();
    stream.on('end', () => answerVersion(stream, 'late'));
  });
  await new Promise<void>((resolve) => server.listen(missing, resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  assert.equal((await runtime.version({})).runtimeName, 'late');
  assert.throws(() => openChannel('tcp://127.0.0.1:1'), /endpoint "tcp:\/\/127\.0\.0\.1:1" is not supported/);
});
