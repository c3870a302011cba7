// berthd's streaming server: the URLs that Exec, Attach and PortForward return. Plain
// HTTP on Node's http module; each URL holds a single-use token for the CRI request it
// stands for (/exec/TOKEN, /attach/TOKEN, /portforward/TOKEN, as the kubelet's stream
// server names them). The connection is upgraded to SPDY/3.1 or to a WebSocket and
// handed to the protocol code (upgrade.ts); what runs is up to the backends.
//
// The port is bound at start-up by a plain `node:net` server (a port in use fails
// start-up); Node's http module and the HTTP server are loaded by the first connection,
// which arrives paused and is handed over (idle memory: `node:http` is ~0.2 MB of heap and
// ~1.4 MB resident, and most nodes never stream).
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../util/logger.js';
import type { AttachRequest, ExecRequest, PortForwardRequest, StreamBackends } from './backends.js';
import { TokenCache } from './token-cache.js';
// Types only: the protocol code (SPDY with zlib, WebSocket with ws, remote command,
// port-forward) is loaded by the first upgrade, not at start-up (idle memory).
import type { Cached } from './upgrade.js';

type UpgradeModule = typeof import('./upgrade.js');

export interface StreamServerOptions {
  address: string;
  port: number;
  backends: StreamBackends;
  log: Logger;
  /** A connection that has sent no whole request by then is closed (Node's headersTimeout, 60 s). */
  requestDeadlineMs?: number;
}

/** Node's HTTP server checks headersTimeout only on a port it listens on itself; here it does not. */
const REQUEST_DEADLINE_MS = 60_000;

export class StreamServer {
  readonly #cache = new TokenCache<Cached>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Connections that have not yet sent a whole request, and when they are closed. */
  readonly #deadlines = new Map<Socket, NodeJS.Timeout>();
  #http: Promise<HttpServer> | undefined;
  #upgrade: Promise<UpgradeModule> | undefined;
  #baseUrl = '';

  constructor(private readonly options: StreamServerOptions) {
    this.#server = createNetServer({ pauseOnConnect: true }, (socket) => this.#onConnection(socket));
  }

  #onConnection(socket: Socket): void {
    this.#sockets.add(socket);
    const deadline = setTimeout(() => socket.destroy(), this.options.requestDeadlineMs ?? REQUEST_DEADLINE_MS);
    deadline.unref();
    this.#deadlines.set(socket, deadline);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#requestCame(socket);
    });
    socket.on('error', () => undefined);
    this.#http ??= import('node:http').then(({ createServer }) => {
      const http = createServer((req, res) => this.#onRequest(req, res));
      http.on('upgrade', (req: IncomingMessage, upgraded: Socket, head: Buffer) => this.#onUpgrade(req, upgraded, head));
      return http;
    });
    this.#http.then(
      (http) => {
        if (socket.destroyed) return;
        http.emit('connection', socket);
        socket.resume();
      },
      (err: Error) => {
        this.options.log.error({ error: err.message }, 'the HTTP server could not be loaded');
        socket.destroy();
      },
    );
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

  /** Its first request came: from here on the HTTP server's keep-alive timeout or the protocol code owns its end. */
  #requestCame(socket: Socket): void {
    clearTimeout(this.#deadlines.get(socket));
    this.#deadlines.delete(socket);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#requestCame(req.socket);
    const cached = this.#take(req);
    if (!cached) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
      return;
    }
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end('unable to upgrade: missing upgrade headers in request\n');
  }

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.#requestCame(socket);
    socket.on('error', () => undefined);
    const cached = this.#take(req);
    if (!cached) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n');
      return;
    }
    // The socket does not flow until the protocol code reads it: nothing is lost meanwhile.
    this.#upgrade ??= import('./upgrade.js');
    this.#upgrade.then(
      (upgrade) => upgrade.serveUpgrade(cached, req, socket, head, this.options),
      (err: Error) => {
        this.options.log.error({ error: err.message }, 'the streaming protocol code could not be loaded');
        socket.destroy();
      },
    );
  }
}
