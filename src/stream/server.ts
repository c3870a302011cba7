// berthd's streaming server: the URLs that Exec, Attach and PortForward return. Plain
// HTTP on Node's http module; each URL holds a single-use token for the CRI request it
// stands for (/exec/TOKEN, /attach/TOKEN, /portforward/TOKEN, as the kubelet's stream
// server names them). The connection is upgraded to SPDY/3.1 or to a WebSocket and
// handed to the protocol code; what runs is up to the backends.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AttachRequest, ExecRequest, PortForwardRequest, StreamBackends } from './backends.js';
import { TokenCache } from './token-cache.js';
import { negotiateProtocol, offeredProtocols, serveRemoteCommandSpdy, SPDY_REMOTE_COMMAND_PROTOCOLS } from './remote-command.js';
import { PORT_FORWARD_PROTOCOL, servePortForwardSpdy } from './port-forward.js';
import { SpdySession } from './spdy.js';
import {
  acceptWebSocket, isWebSocketRequest, negotiateSubprotocol, offeredSubprotocols, portsFromQuery, servePortForwardWebSocket, serveRemoteCommandWebSocket,
  SPDY_TUNNEL_PORT_FORWARD_PROTOCOL, WebSocketTunnel, WS_PORT_FORWARD_PROTOCOLS, WS_REMOTE_COMMAND_PROTOCOLS,
} from './websocket.js';

type Cached = { kind: 'exec'; request: ExecRequest } | { kind: 'attach'; request: AttachRequest } | { kind: 'portforward'; request: PortForwardRequest };

export interface StreamServerOptions {
  address: string;
  port: number;
  backends: StreamBackends;
  log: Logger;
}

export class StreamServer {
  readonly #cache = new TokenCache<Cached>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #baseUrl = '';

  constructor(private readonly options: StreamServerOptions) {
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.options.port, this.options.address, () => resolve());
    });
    const address = this.#server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#baseUrl = `http://${host}:${address.port}`;
    this.options.log.info({ url: this.#baseUrl }, 'streaming server listening');
    return this.#baseUrl;
  }

  get baseUrl(): string {
    return this.#baseUrl;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  execUrl(request: ExecRequest): string {
    return `${this.#baseUrl}/exec/${this.#cache.insert({ kind: 'exec', request })}`;
  }

  attachUrl(request: AttachRequest): string {
    return `${this.#baseUrl}/attach/${this.#cache.insert({ kind: 'attach', request })}`;
  }

  portForwardUrl(request: PortForwardRequest): string {
    return `${this.#baseUrl}/portforward/${this.#cache.insert({ kind: 'portforward', request })}`;
  }

  #take(req: IncomingMessage): Cached | undefined {
    const match = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
    if (!match) return undefined;
    const cached = this.#cache.consume(match[2]!);
    return cached?.kind === match[1] ? cached : undefined;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const cached = this.#take(req);
    if (!cached) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
      return;
    }
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end('unable to upgrade: missing upgrade headers in request\n');
  }

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const cached = this.#take(req);
    if (!cached) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n');
      return;
    }
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    const log = this.options.log.child({ stream: cached.kind });
    if (upgrade === 'websocket') {
      this.#onWebSocket(cached, req, socket, head, log);
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
      servePortForwardSpdy(session, cached.request.podId, this.options.backends);
      return;
    }
    void this.#remoteCommand(cached, (run) => serveRemoteCommandSpdy(session, chosen, optionsOf(cached.request), run));
  }

  #onWebSocket(cached: Cached, req: IncomingMessage, socket: Socket, head: Buffer, log: Logger): void {
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
        servePortForwardSpdy(new SpdySession(new WebSocketTunnel(ws), 'server'), cached.request.podId, this.options.backends);
        return;
      }
      if (cached.kind === 'portforward') {
        void servePortForwardWebSocket(ws, subprotocol, cached.request.podId, ports, this.options.backends).catch((err: Error) => log.warn({ error: err.message }, 'port-forward session failed'));
        return;
      }
      void this.#remoteCommand(cached, (run) => serveRemoteCommandWebSocket(ws, subprotocol, optionsOf(cached.request), run));
    });
  }

  async #remoteCommand(cached: Cached, serve: (run: Parameters<typeof serveRemoteCommandSpdy>[3]) => Promise<void>): Promise<void> {
    try {
      if (cached.kind === 'exec') await serve((io) => this.options.backends.exec(cached.request, io));
      else if (cached.kind === 'attach') await serve((io) => this.options.backends.attach(cached.request, io));
    } catch (err) {
      this.options.log.warn({ error: (err as Error).message }, 'streaming session failed');
    }
  }
}

function optionsOf(request: ExecRequest | AttachRequest): { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean } {
  return { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty };
}
