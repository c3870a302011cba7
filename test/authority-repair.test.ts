// The transport fix for old gRPC clients: a socket path as HTTP/2 :authority is refused
// by Node's HTTP/2 server as it is, and served once AuthorityRepair stands in front of
// it, on the first request and on later ones that reuse HPACK's dynamic table. Then the
// real thing: grpc-go clients, old and current, against berthd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as http2Connect, createServer as createHttp2Server, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { acceptConnection, AuthorityRepair, authorityAccepted, REPLACEMENT_AUTHORITY } from '../src/server/authority-repair.js';
import { startBerthd } from './helpers/berthd.js';
import { isRoot, PACKAGE_ROOT } from './helpers/paths.js';
import { run } from './helpers/processes.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';

/** An HTTP/2 server on a unix socket that answers each request with the authority it saw. */
async function authorityEchoServer(
  t: { after(fn: () => unknown): void },
  repair: boolean | 'accept',
  handedOver: Array<'socket' | 'repair'> = [],
): Promise<string> {
  const dir = await tempDir(t, 'authority-');
  const path = join(dir, 'h2.sock');
  const http2Server = createHttp2Server();
  http2Server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(String(headers[':authority']));
  });
  const listener = createNetServer((socket: Socket) => {
    socket.on('error', () => undefined);
    if (repair === 'accept') {
      acceptConnection(socket, (connection) => {
        handedOver.push(connection instanceof AuthorityRepair ? 'repair' : 'socket');
        http2Server.emit('connection', connection);
      });
    } else {
      http2Server.emit('connection', repair ? new AuthorityRepair(socket) : socket);
    }
  });
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  cleanup(t).after(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  return path;
}

function get(session: ClientHttp2Session, authority: string, extra: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = session.request({ ':method': 'GET', ':path': '/', ':authority': authority, ...extra });
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => resolve(body));
    request.on('error', reject);
    request.end();
  });
}

test('authorityAccepted follows nghttp2: a path is refused, host names and escapes pass', () => {
  assert.equal(authorityAccepted('/run/berth/berth.sock'), false);
  assert.equal(authorityAccepted('localhost'), true);
  assert.equal(authorityAccepted('%2Frun%2Fberth%2Fberth.sock'), true);
  assert.equal(authorityAccepted('[::1]:10250'), true);
});

test('a socket path as :authority is refused without the repair', async (t) => {
  const path = await authorityEchoServer(t, false);
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(path) });
  session.on('error', () => undefined);
  cleanup(t).after(() => session.destroy());
  await assert.rejects(get(session, '/run/berth/berth.sock'), /PROTOCOL_ERROR|RST_STREAM|NGHTTP2/);
});

test('with the repair, every request of a connection with a path authority is served', async (t) => {
  const path = await authorityEchoServer(t, true);
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(path) });
  cleanup(t).after(() => session.destroy());
  // Node's client indexes :authority in HPACK's dynamic table: later requests refer to it.
  for (let i = 0; i < 3; i++) assert.equal(await get(session, '/run/berth/berth.sock'), REPLACEMENT_AUTHORITY);
  // A header block larger than one frame goes out as HEADERS + CONTINUATION.
  assert.equal(await get(session, '/run/berth/berth.sock', { 'x-big': 'b'.repeat(40_000) }), REPLACEMENT_AUTHORITY);
  assert.equal(await get(session, '/run/berth/berth.sock'), REPLACEMENT_AUTHORITY);
});

test('with the repair, a valid authority reaches the server unchanged', async (t) => {
  const path = await authorityEchoServer(t, true);
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(path) });
  cleanup(t).after(() => session.destroy());
  for (let i = 0; i < 3; i++) assert.equal(await get(session, 'node-1.example:10250'), 'node-1.example:10250');
});

// acceptConnection, as berthd serves: the server preface is sent before the server
// exists, the client's first request decides; the socket itself goes to the server when
// no repair is needed.
test('acceptConnection: a valid authority gets the socket itself, every request served', async (t) => {
  const handedOver: Array<'socket' | 'repair'> = [];
  const path = await authorityEchoServer(t, 'accept', handedOver);
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(path) });
  cleanup(t).after(() => session.destroy());
  // Several requests at once, before the server's own SETTINGS could have arrived.
  const first = await Promise.all([get(session, 'localhost'), get(session, 'localhost'), get(session, 'localhost', { 'x-big': 'b'.repeat(40_000) })]);
  assert.deepEqual(first, ['localhost', 'localhost', 'localhost']);
  for (let i = 0; i < 3; i++) assert.equal(await get(session, 'localhost'), 'localhost');
  assert.deepEqual(handedOver, ['socket']);
});

test('acceptConnection: a path authority goes through the repair, every request served', async (t) => {
  const handedOver: Array<'socket' | 'repair'> = [];
  const path = await authorityEchoServer(t, 'accept', handedOver);
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(path) });
  cleanup(t).after(() => session.destroy());
  for (let i = 0; i < 3; i++) assert.equal(await get(session, '/run/berth/berth.sock'), REPLACEMENT_AUTHORITY);
  assert.equal(await get(session, '/run/berth/berth.sock', { 'x-big': 'b'.repeat(40_000) }), REPLACEMENT_AUTHORITY);
  assert.equal(await get(session, '/run/berth/berth.sock'), REPLACEMENT_AUTHORITY);
  assert.deepEqual(handedOver, ['repair']);
});

/** Builds test/grpc-go-client against one grpc-go release (cached); its path. */
async function grpcGoClient(version: string): Promise<string> {
  const built = await run('bash', [join(PACKAGE_ROOT, 'scripts/build-grpc-go-client.sh'), version], { timeoutMs: 600_000 });
  assert.equal(built.code, 0, `building the grpc-go ${version} client failed:\n${built.stderr}`);
  return built.stdout.trim();
}

// grpc-go 1.51 is what crictl/critest 1.26 and kubelets of that era carry: it sends the
// dial target (here the socket path) as :authority. The current one sends what it sends.
for (const version of ['v1.51.0', 'v1.85.0']) {
  test(`a grpc-go ${version} client gets answers from berthd, dialing the socket path and unix://`, { skip: !isRoot && 'berthd needs root' }, async (t) => {
    const client = await grpcGoClient(version);
    const berthd = await startBerthd(t);
    for (const target of [berthd.socket, `unix://${berthd.socket}`]) {
      const result = await run(client, [target, berthd.socket], { timeoutMs: 30_000 });
      assert.equal(result.code, 0, `target ${target}: ${result.stdout}${result.stderr}`);
      const answers = result.stdout.trim().split('\n');
      assert.equal(answers.length, 3, result.stdout);
      for (const answer of answers) assert.match(answer, /^ok ".*berth.*v1"$/);
    }
  });
}
