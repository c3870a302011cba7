// exec, attach and port-forward over WebSocket, as the kubelet's CRI stream server
// serves them (k8s.io/kubelet/pkg/cri/streaming remotecommand/websocket.go and
// portforward/websocket.go), plus v5.channel.k8s.io (KEP-3396: the close signal that
// lets a client end stdin, which kubectl's WebSocket executor requires).
//
// Remote command: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. Right after
// the upgrade the server sends an empty message on the lowest channel it writes to
// (stdout, else stderr, else error), the kubelet's sign that the session is open. At
// the end the error channel carries the status (v4/v5: a metav1.Status; older: the
// error's text, nothing on success) and the connection is closed normally (1000),
// which is what ends the client's readers.
//
// Port-forward: the ports are the `port` query parameters (repeated or comma-separated;
// else the CRI request's ports, which is what containerd and CRI-O use); port i gets
// channel 2i (data, both ways) and 2i+1 (error, server to client). The first message
// on each carries the port as a little-endian uint16. One connection per port, and the
// WebSocket ends when all of them have. A client may instead ask for
// `SPDY/3.1+portforward.k8s.io`: SPDY/3.1's bytes carried in binary messages (KEP-4006,
// what client-go's tunneling dialer and so `crictl port-forward --transport websocket`
// speak), served as SPDY port-forward is, with any number of connections.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { StreamBackends, StreamIO } from './backends.js';
import { endWritable, errorPayload, resizeEmitterFrom, sessionFailure, type StreamOptions } from './remote-command.js';
import { ChannelConnection, channelProtocol } from './websocket-channels.js';

/** WebSocket subprotocols of exec and attach, most preferred first. */
export const WS_REMOTE_COMMAND_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
];
/** SPDY tunneled through a WebSocket (KEP-4006; client-go's port-forward over WebSocket, crictl --transport websocket). */
export const SPDY_TUNNEL_PORT_FORWARD_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';
/** WebSocket subprotocols of port-forward (no subprotocol at all is binary channels too). */
export const WS_PORT_FORWARD_PROTOCOLS = [SPDY_TUNNEL_PORT_FORWARD_PROTOCOL, 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io'];

export const STDIN_CHANNEL = 0;
export const STDOUT_CHANNEL = 1;
export const STDERR_CHANNEL = 2;
export const ERROR_CHANNEL = 3;
export const RESIZE_CHANNEL = 4;

/** True for a WebSocket upgrade (wsstream.IsWebSocketRequest: Upgrade websocket, Connection naming upgrade). */
export function isWebSocketRequest(req: IncomingMessage): boolean {
  return String(req.headers.upgrade ?? '').toLowerCase() === 'websocket' && /(^|,)\s*upgrade\s*($|,)/i.test(String(req.headers.connection ?? ''));
}

/** The client's subprotocols (Sec-WebSocket-Protocol, in its order). */
export function offeredSubprotocols(req: IncomingMessage): string[] {
  const header = req.headers['sec-websocket-protocol'];
  return (Array.isArray(header) ? header : header ? [header] : []).flatMap((h) => h.split(',')).map((p) => p.trim()).filter(Boolean);
}

/**
 * The subprotocol to answer: the client's first that the server speaks (x/net/websocket's
 * order); '' when the client named none; undefined when none is common.
 */
export function negotiateSubprotocol(offered: string[], supported: string[]): string | undefined {
  if (offered.length === 0) return '';
  return offered.find((p) => supported.includes(p));
}

/** The port-forward ports of a WebSocket request's query (undefined: none given; throws on a bad one). */
export function portsFromQuery(url: string): number[] | undefined {
  const values = new URL(url, 'http://x').searchParams.getAll('port');
  if (values.length === 0) return undefined;
  const ports: number[] = [];
  for (const value of values) {
    if (value === '') throw new Error('query parameter "port" cannot be empty');
    for (const part of value.split(',')) {
      if (!/^\d+$/.test(part) || Number(part) > 65535) throw new Error(`unable to parse "${value}" as a port`);
      if (Number(part) < 1) throw new Error(`port "${value}" must be > 0`);
      ports.push(Number(part));
    }
  }
  return ports;
}

/** The status version a subprotocol's error channel follows (errorPayload's names). */
function statusProtocol(subprotocol: string): string {
  if (subprotocol === 'v5.channel.k8s.io') return subprotocol;
  if (subprotocol.startsWith('v4.')) return 'v4.channel.k8s.io';
  return 'channel.k8s.io';
}

const chosenSubprotocols = new WeakMap<IncomingMessage, string>();
// ws is loaded with the first WebSocket stream, not at start-up (idle memory: most nodes
// never exec over WebSockets).
let wss: Promise<WebSocketServer> | undefined;
function webSocketServer(): Promise<WebSocketServer> {
  wss ??= import('ws').then(
    ({ WebSocketServer }) =>
      new WebSocketServer({
        noServer: true,
        perMessageDeflate: false,
        maxPayload: 16 * 1024 * 1024,
        clientTracking: false,
        handleProtocols: (_offered, req) => chosenSubprotocols.get(req) || false,
      }),
  );
  return wss;
}

/** Completes a WebSocket handshake with the subprotocol already chosen ('' for none). */
export async function acceptWebSocket(req: IncomingMessage, socket: Socket, head: Buffer, subprotocol: string): Promise<WebSocket> {
  const server = await webSocketServer();
  chosenSubprotocols.set(req, subprotocol);
  // ws accepts only RFC 7230 tokens in Sec-WebSocket-Protocol, and KEP-4006's
  // `SPDY/3.1+portforward.k8s.io` is not one ('/'): the offer was read already, so ws
  // gets a stand-in, and handleProtocols answers the real choice.
  if (subprotocol) req.headers['sec-websocket-protocol'] = 'negotiated';
  return new Promise((resolve) => server.handleUpgrade(req, socket, head, (ws) => resolve(ws)));
}

/** Serves one exec or attach over an accepted WebSocket. */
export async function serveRemoteCommandWebSocket(ws: WebSocket, subprotocol: string, options: StreamOptions, run: (io: StreamIO) => Promise<number | void>): Promise<void> {
  const connection = new ChannelConnection(ws, channelProtocol(subprotocol));
  const abort = new AbortController();
  void connection.closed.then(() => abort.abort());
  const stdin = options.stdin ? connection.channel(STDIN_CHANNEL) : undefined;
  const stdout = options.stdout ? connection.channel(STDOUT_CHANNEL) : undefined;
  const stderr = options.stderr ? connection.channel(STDERR_CHANNEL) : undefined;
  const errorChannel = connection.channel(ERROR_CHANNEL);
  const resize = connection.channel(RESIZE_CHANNEL);
  // Nothing is read from the output channels: what a client sends there is dropped.
  for (const channel of [stdout, stderr, errorChannel]) channel?.resume();
  const first = stdout ?? stderr ?? errorChannel;
  await connection.sendRaw(first.channel, Buffer.alloc(0)).catch(() => undefined);
  const io: StreamIO = {
    stdin,
    stdout,
    stderr: options.tty ? undefined : stderr,
    tty: options.tty,
    resize: resizeEmitterFrom(options.tty ? resize : undefined),
    signal: abort.signal,
  };
  if (!options.tty) resize.resume();
  const failure = await sessionFailure(run, io);
  if (connection.isClosed) return;
  await Promise.all([endWritable(stdout), endWritable(stderr)]);
  const payload = errorPayload(statusProtocol(subprotocol), failure);
  if (payload) await connection.send(ERROR_CHANNEL, payload).catch(() => undefined);
  connection.close();
  await connection.closed;
}

/** Serves port-forward over an accepted WebSocket: every port at once, one connection each. */
export async function servePortForwardWebSocket(ws: WebSocket, subprotocol: string, podId: string, ports: number[], backends: StreamBackends): Promise<void> {
  const connection = new ChannelConnection(ws, channelProtocol(subprotocol));
  const abort = new AbortController();
  void connection.closed.then(() => abort.abort());
  const pairs = ports.map((port, i) => ({ port, data: connection.channel(2 * i), error: connection.channel(2 * i + 1) }));
  const portBytes = (port: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(port);
    return b;
  };
  for (const { port, data, error } of pairs) {
    error.resume();
    await connection.sendRaw(data.channel, portBytes(port)).catch(() => undefined);
    await connection.sendRaw(error.channel, portBytes(port)).catch(() => undefined);
  }
  await Promise.all(
    pairs.map(async ({ port, data, error }) => {
      try {
        await backends.portForward(podId, port, data, abort.signal);
      } catch (err) {
        if (!connection.isClosed) await connection.send(error.channel, Buffer.from(`error forwarding port ${port} to pod ${podId}: ${(err as Error).message}`)).catch(() => undefined);
      }
      await endWritable(data);
    }),
  );
  connection.close();
  await connection.closed;
}

/**
 * A WebSocket as a byte stream: each binary message is a piece of it, each write one
 * message (the tunnel KEP-4006 defines for SPDY). Backpressure both ways: a reader that
 * falls behind pauses the WebSocket; writes wait while the socket's queue is long.
 */
export class WebSocketTunnel extends Duplex {
  #paused = false;

  constructor(readonly ws: WebSocket) {
    super({ allowHalfOpen: false });
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean) => {
      if (!isBinary) {
        this.destroy(new Error('a tunneled connection carries binary messages only'));
        return;
      }
      const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!this.push(chunk) && !this.#paused) {
        this.#paused = true;
        ws.pause();
      }
    });
    ws.on('error', () => undefined);
    if (ws.isPaused) ws.resume();
    ws.once('close', () => {
      this.push(null);
      this.destroy();
    });
  }

  override _read(): void {
    if (this.#paused) {
      this.#paused = false;
      this.ws.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      callback(new Error('WebSocket connection closed'));
      return;
    }
    let done = false;
    this.ws.send(chunk, { binary: true }, (err) => {
      if (done) return;
      done = true;
      callback(err);
    });
    if (!done && this.ws.bufferedAmount < 256 * 1024) {
      done = true;
      callback();
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(1000);
    const timer = setTimeout(() => this.ws.terminate(), 5000);
    timer.unref();
    callback(error);
  }
}
