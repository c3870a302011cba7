// berthctl's side of the streaming protocols: what client-go's remotecommand and
// portforward packages do for kubectl and crictl, over SPDY/3.1 or WebSocket. Works
// against any CRI runtime's streaming server (berthd's, containerd's, CRI-O's).
//
// WebSocket: exec and attach offer v5.channel.k8s.io first (stdin's end is passed on
// with its close signal), then v4 and older, which the kubelet's stream server in
// containerd and CRI-O speaks (there stdin cannot be ended: a command reading to EOF
// waits until the session ends). Port-forward uses the channel protocol
// (v4.channel.k8s.io): one WebSocket per connection, so one PortForward call per
// connection (a streaming URL is single-use).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { createServer, type Server } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { SpdySession, type SpdyStream } from '../stream/spdy.js';
import { SPDY_REMOTE_COMMAND_PROTOCOLS } from '../stream/remote-command.js';
import { PORT_FORWARD_PROTOCOL } from '../stream/port-forward.js';
import type { TerminalSize } from '../stream/backends.js';
import { WebSocket } from 'ws';
import { ChannelConnection, channelProtocol } from '../stream/websocket-channels.js';

import type { StreamTransport } from './stream-transports.js';
export { STREAM_TRANSPORTS, type StreamTransport } from './stream-transports.js';
/** The remote-command subprotocols berthctl offers over WebSocket, in its order. */
export const WS_CLIENT_REMOTE_COMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
export const WS_CLIENT_PORT_FORWARD_PROTOCOLS = ['v4.channel.k8s.io', 'channel.k8s.io'];

export class StreamClientError extends Error {}

/**
 * crictl's --tls-ca, --tls-cert, --tls-key and --tls-sni, for a streaming URL that is
 * https: without any, the server is not verified (crictl's Insecure); with a client
 * certificate and key, the server is verified against the CA (or the system's) under
 * the server name (crictl's default "localhost"). Files are paths.
 */
export interface StreamTls {
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
}

/** The TLS options of an https or wss connection for `tls`. */
export function streamTlsOptions(tls: StreamTls | undefined): { rejectUnauthorized: boolean; ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } {
  if (!tls || (!tls.ca && !tls.cert && !tls.key)) return { rejectUnauthorized: false };
  if (!tls.cert || !tls.key) throw new StreamClientError('get TLS config from flags: both flags --tls-cert and --tls-key are required for TLS streaming, only --tls-ca is optional');
  return {
    rejectUnauthorized: true,
    ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}),
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    servername: tls.serverName ?? 'localhost',
  };
}

/** Upgrades an HTTP request on `url` to SPDY/3.1, offering `protocols` in order. */
export function spdyConnect(url: string, protocols: string[], tls?: StreamTls): Promise<{ session: SpdySession; protocol: string }> {
  const target = new URL(url);
  const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, {
    ...(target.protocol === 'https:' ? streamTlsOptions(tls) : {}),
    method: 'POST',
    headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': protocols, 'Content-Length': '0' },
  });
  return new Promise((resolve, reject) => {
    request.on('upgrade', (response, socket: Socket, head: Buffer) => {
      const chosen = String(response.headers['x-stream-protocol-version'] ?? '');
      resolve({ session: new SpdySession(socket, 'client', head), protocol: chosen });
    });
    request.on('response', (response) => {
      let body = '';
      response.on('data', (d: Buffer) => (body += d.toString()));
      response.on('end', () => reject(new StreamClientError(`unable to upgrade connection: ${body.trim() || `${response.statusCode} ${response.statusMessage}`}`)));
    });
    request.on('error', (err) => reject(new StreamClientError(`cannot connect to the streaming server ${target.host}: ${err.message}`)));
    request.end();
  });
}

/** Opens a WebSocket to a streaming URL offering `protocols`; resolves with the one the server chose. */
export function wsConnect(url: string, protocols: string[], tls?: StreamTls): Promise<{ ws: WebSocket; protocol: string }> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  target.protocol = secure ? 'wss:' : 'ws:';
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, protocols, { perMessageDeflate: false, followRedirects: false, handshakeTimeout: 30_000, ...(secure ? streamTlsOptions(tls) : {}) });
    // Paused until its reader is in place: the server may write right behind the upgrade.
    ws.once('open', () => {
      ws.pause();
      resolve({ ws, protocol: ws.protocol });
    });
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (d: Buffer) => (body += d.toString()));
      response.on('end', () => reject(new StreamClientError(`unable to upgrade connection: ${body.trim() || `${response.statusCode} ${response.statusMessage}`}`)));
      response.on('error', () => reject(new StreamClientError(`unable to upgrade connection: ${response.statusCode} ${response.statusMessage}`)));
    });
    ws.once('error', (err) => reject(new StreamClientError(`cannot connect to the streaming server ${target.host}: ${err.message}`)));
  });
}

export interface RemoteCommandOptions {
  /** spdy (the default) or websocket. */
  transport?: StreamTransport;
  stdin?: Readable;
  stdout: Writable;
  stderr?: Writable;
  tty: boolean;
  /** Emits 'resize' with the local terminal's size (TTY sessions). */
  resize?: EventEmitter<{ resize: [TerminalSize] }>;
  initialSize?: TerminalSize;
  /** For an https URL (crictl's --tls-* flags). */
  tls?: StreamTls;
}

/** Reads a stream to its end. */
function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('close', () => resolve(Buffer.concat(parts)));
    stream.on('error', () => resolve(Buffer.concat(parts)));
  });
}

function finished(stream: Readable | undefined): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
    stream.once('error', () => resolve());
  });
}

/** The exit code the error stream's content stands for (0: success); throws other failures. */
export function exitCodeFromErrorStream(protocol: string, payload: Buffer): number {
  const text = payload.toString().trim();
  if (protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io') {
    if (!text) return 0;
    let status: { status?: string; message?: string; reason?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
    try {
      status = JSON.parse(text) as typeof status;
    } catch {
      throw new StreamClientError(`error stream: ${text}`);
    }
    if (status.status === 'Success') return 0;
    if (status.reason === 'NonZeroExitCode') {
      const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
      const code = Number(cause?.message);
      if (Number.isInteger(code)) return code;
    }
    throw new StreamClientError(status.message || text);
  }
  if (!text) return 0;
  throw new StreamClientError(text);
}

/** Runs an exec or attach session against a streaming URL; resolves with the exit code. */
export async function remoteCommand(url: string, options: RemoteCommandOptions): Promise<number> {
  if (options.transport === 'websocket') return remoteCommandWebSocket(url, options);
  const { session, protocol } = await spdyConnect(url, SPDY_REMOTE_COMMAND_PROTOCOLS, options.tls);
  session.on('error', () => undefined);
  try {
    const errorStream = await session.openStream({ streamtype: 'error' });
    errorStream.end();
    const errorText = readAll(errorStream);
    const stdin = options.stdin ? await session.openStream({ streamtype: 'stdin' }) : undefined;
    const stdout = await session.openStream({ streamtype: 'stdout' });
    const stderr = !options.tty && options.stderr ? await session.openStream({ streamtype: 'stderr' }) : undefined;
    const resize = options.tty && protocol !== 'v2.channel.k8s.io' && protocol !== 'channel.k8s.io' ? await session.openStream({ streamtype: 'resize' }) : undefined;
    for (const s of [stdout, stderr, resize, stdin]) s?.on('error', () => undefined);
    if (resize) {
      resize.resume();
      const send = (size: TerminalSize) => {
        if (!resize.writableEnded && !resize.destroyed) resize.write(JSON.stringify({ Width: size.width, Height: size.height }));
      };
      if (options.initialSize) send(options.initialSize);
      options.resize?.on('resize', send);
    }
    if (stdin && options.stdin) {
      stdin.resume();
      options.stdin.pipe(stdin);
    }
    stdout.pipe(options.stdout, { end: false });
    if (stderr && options.stderr) stderr.pipe(options.stderr, { end: false });
    const [payload] = await Promise.all([errorText, finished(stdout), finished(stderr)]);
    return exitCodeFromErrorStream(protocol, payload);
  } finally {
    if (options.stdin) options.stdin.unpipe();
    session.close();
  }
}

/** The error-stream version of a WebSocket subprotocol (exitCodeFromErrorStream's names). */
function statusVersion(subprotocol: string): string {
  if (subprotocol === 'v5.channel.k8s.io') return subprotocol;
  return subprotocol.startsWith('v4.') ? 'v4.channel.k8s.io' : 'channel.k8s.io';
}

/** remoteCommand over WebSocket: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. */
async function remoteCommandWebSocket(url: string, options: RemoteCommandOptions): Promise<number> {
  const { ws, protocol } = await wsConnect(url, WS_CLIENT_REMOTE_COMMAND_PROTOCOLS, options.tls);
  const connection = new ChannelConnection(ws, channelProtocol(protocol));
  try {
    const stdin = options.stdin ? connection.channel(0, { signalClose: true }) : undefined;
    const stdout = connection.channel(1);
    const stderr = connection.channel(2);
    const errorText = readAll(connection.channel(3));
    if (options.tty) {
      const resize = connection.channel(4);
      const send = (size: TerminalSize) => {
        if (!connection.isClosed) void connection.send(4, Buffer.from(JSON.stringify({ Width: size.width, Height: size.height }))).catch(() => undefined);
      };
      if (options.initialSize) send(options.initialSize);
      options.resize?.on('resize', send);
      void connection.closed.then(() => options.resize?.off('resize', send));
      resize.resume();
    }
    if (stdin && options.stdin) options.stdin.pipe(stdin);
    stdout.pipe(options.stdout, { end: false });
    if (options.stderr) stderr.pipe(options.stderr, { end: false });
    else stderr.resume();
    const [payload] = await Promise.all([errorText, finished(stdout), finished(stderr), connection.closed]);
    return exitCodeFromErrorStream(statusVersion(protocol), payload);
  } finally {
    if (options.stdin) options.stdin.unpipe();
    connection.close();
  }
}

/**
 * Forwards local TCP connections to a pod's port through a port-forward URL (one SPDY
 * connection; per local connection an error and a data stream, as client-go does).
 * Resolves with the listening server; the session's end closes it.
 */
export async function portForward(
  urlFor: () => Promise<string>,
  localAddress: string,
  localPort: number,
  remotePort: number,
  onError: (message: string) => void,
  transport: StreamTransport = 'spdy',
  tls?: StreamTls,
): Promise<{ server: Server; closed: Promise<void> }> {
  if (transport === 'websocket') return portForwardWebSocket(urlFor, localAddress, localPort, remotePort, onError, tls);
  const { session } = await spdyConnect(await urlFor(), [PORT_FORWARD_PROTOCOL], tls);
  session.on('error', () => undefined);
  let requestId = 0;
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    const id = String(requestId++);
    void (async () => {
      let data: SpdyStream | undefined;
      try {
        const error = await session.openStream({ streamtype: 'error', port: String(remotePort), requestid: id });
        error.end();
        void readAll(error).then((text) => {
          if (text.length > 0) {
            onError(text.toString());
            socket.destroy();
          }
        });
        data = await session.openStream({ streamtype: 'data', port: String(remotePort), requestid: id });
        data.on('error', () => socket.destroy());
        socket.pipe(data);
        data.pipe(socket);
      } catch (err) {
        onError((err as Error).message);
        socket.destroy();
        data?.reset();
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localPort, localAddress, () => resolve());
  });
  const closed = new Promise<void>((resolve) =>
    session.on('close', () => {
      server.close();
      resolve();
    }),
  );
  return { server, closed };
}

/**
 * Port-forward over WebSocket (the channel protocol): per local connection a fresh URL
 * (a token is single-use) and one WebSocket with the port in its query; channel 0 is
 * the data, channel 1 the errors, each beginning with the port (uint16, little-endian).
 * The listener runs until it is closed.
 */
async function portForwardWebSocket(
  urlFor: () => Promise<string>,
  localAddress: string,
  localPort: number,
  remotePort: number,
  onError: (message: string) => void,
  tls?: StreamTls,
): Promise<{ server: Server; closed: Promise<void> }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pause();
    void (async () => {
      try {
        const url = new URL(await urlFor());
        url.searchParams.set('port', String(remotePort));
        const { ws, protocol } = await wsConnect(url.toString(), WS_CLIENT_PORT_FORWARD_PROTOCOLS, tls);
        const connection = new ChannelConnection(ws, channelProtocol(protocol));
        const data = connection.channel(0, { skipPrefix: 2 });
        void readAll(connection.channel(1, { skipPrefix: 2 })).then((text) => {
          if (text.length > 0) {
            onError(text.toString());
            socket.destroy();
          }
        });
        socket.pipe(data);
        data.pipe(socket);
        socket.resume();
        // The client cannot half-close a v4 channel: the WebSocket ends with the local
        // connection, or when the pod's side has closed and the server ends it.
        socket.on('close', () => connection.close());
      } catch (err) {
        onError((err as Error).message);
        socket.destroy();
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localPort, localAddress, () => resolve());
  });
  const closed = new Promise<void>((resolve) => server.on('close', () => resolve()));
  return { server, closed };
}
