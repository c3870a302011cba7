// The upgrade of a streaming connection that holds a valid token: SPDY/3.1 or a
// WebSocket, the stream protocol negotiated, then the remote-command or port-forward
// session over it. Loaded by the streaming server on its first upgrade (idle memory:
// zlib, ws and the protocol code stay out of a berthd that never streams).
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../util/logger.js';
import type { AttachRequest, ExecRequest, PortForwardRequest, StreamBackends } from './backends.js';
import { negotiateProtocol, offeredProtocols, serveRemoteCommandSpdy, SPDY_REMOTE_COMMAND_PROTOCOLS } from './remote-command.js';
import { PORT_FORWARD_PROTOCOL, servePortForwardSpdy } from './port-forward.js';
import { SpdySession } from './spdy.js';
import {
  acceptWebSocket, isWebSocketRequest, negotiateSubprotocol, offeredSubprotocols, portsFromQuery, servePortForwardWebSocket, serveRemoteCommandWebSocket,
  SPDY_TUNNEL_PORT_FORWARD_PROTOCOL, WebSocketTunnel, WS_PORT_FORWARD_PROTOCOLS, WS_REMOTE_COMMAND_PROTOCOLS,
} from './websocket.js';

/** The request a token stands for. */
export type Cached = { kind: 'exec'; request: ExecRequest } | { kind: 'attach'; request: AttachRequest } | { kind: 'portforward'; request: PortForwardRequest };

export interface UpgradeOptions {
  backends: StreamBackends;
  log: Logger;
}

export function serveUpgrade(cached: Cached, req: IncomingMessage, socket: Socket, head: Buffer, options: UpgradeOptions): void {
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  const log = options.log.child({ stream: cached.kind });
  if (upgrade === 'websocket') {
    onWebSocket(cached, req, socket, head, log, options);
    return;
  }
  if (upgrade !== 'spdy/3.1') {
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nunable to upgrade: unsupported protocol\n');
    return;
  }
  const supported = cached.kind === 'portforward' ? [PORT_FORWARD_PROTOCOL] : SPDY_REMOTE_COMMAND_PROTOCOLS;
  const header = req.headers['x-stream-protocol-version'];
  const protocol = negotiateProtocol(header, supported);
  if (protocol === undefined) {
    const body = `unable to upgrade: unable to negotiate protocol: client supports [${offeredProtocols(header).join(' ')}], server supports [${supported.join(' ')}]\n`;
    socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Accepted-Stream-Protocol-Versions: ${supported.join(', ')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    return;
  }
  const chosen = protocol || (cached.kind === 'portforward' ? PORT_FORWARD_PROTOCOL : 'channel.k8s.io');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${chosen}\r\n\r\n`);
  const session = new SpdySession(socket, 'server', head);
  log.debug({ protocol: chosen }, 'spdy stream');
  if (cached.kind === 'portforward') {
    servePortForwardSpdy(session, cached.request.podId, options.backends);
    return;
  }
  void remoteCommand(cached, options, (run) => serveRemoteCommandSpdy(session, chosen, optionsOf(cached.request), run));
}

function onWebSocket(cached: Cached, req: IncomingMessage, socket: Socket, head: Buffer, log: Logger, options: UpgradeOptions): void {
  const refuse = (status: string, body: string): void =>
    void socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  if (!isWebSocketRequest(req)) return refuse('400 Bad Request', 'unable to upgrade: missing upgrade headers in request\n');
  const supported = cached.kind === 'portforward' ? WS_PORT_FORWARD_PROTOCOLS : WS_REMOTE_COMMAND_PROTOCOLS;
  const offered = offeredSubprotocols(req);
  const subprotocol = negotiateSubprotocol(offered, supported);
  if (subprotocol === undefined) {
    return refuse('403 Forbidden', `unable to upgrade websocket connection: requested protocol(s) are not supported: [${offered.join(' ')}]; supports [${supported.join(' ')}]\n`);
  }
  let ports: number[] = [];
  if (cached.kind === 'portforward' && subprotocol !== SPDY_TUNNEL_PORT_FORWARD_PROTOCOL) {
    try {
      ports = portsFromQuery(req.url ?? '/') ?? cached.request.ports;
    } catch (err) {
      return refuse('400 Bad Request', `${(err as Error).message}\n`);
    }
    if (ports.length === 0) return refuse('400 Bad Request', 'query parameter "port" is required\n');
  }
  void acceptWebSocket(req, socket, head, subprotocol).then((ws) => {
    log.debug({ protocol: subprotocol, transport: 'websocket' }, 'websocket stream');
    if (cached.kind === 'portforward' && subprotocol === SPDY_TUNNEL_PORT_FORWARD_PROTOCOL) {
      servePortForwardSpdy(new SpdySession(new WebSocketTunnel(ws), 'server'), cached.request.podId, options.backends);
      return;
    }
    if (cached.kind === 'portforward') {
      void servePortForwardWebSocket(ws, subprotocol, cached.request.podId, ports, options.backends).catch((err: Error) => log.warn({ error: err.message }, 'port-forward session failed'));
      return;
    }
    void remoteCommand(cached, options, (run) => serveRemoteCommandWebSocket(ws, subprotocol, optionsOf(cached.request), run));
  });
}

async function remoteCommand(cached: Cached, options: UpgradeOptions, serve: (run: Parameters<typeof serveRemoteCommandSpdy>[3]) => Promise<void>): Promise<void> {
  try {
    if (cached.kind === 'exec') await serve((io) => options.backends.exec(cached.request, io));
    else if (cached.kind === 'attach') await serve((io) => options.backends.attach(cached.request, io));
  } catch (err) {
    options.log.warn({ error: (err as Error).message }, 'streaming session failed');
  }
}

function optionsOf(request: ExecRequest | AttachRequest): { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean } {
  return { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty };
}
