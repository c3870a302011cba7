// WebSocket (RFC 6455) for the streaming server: the handshake and a message-level
// connection. Filled in below the SPDY path.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { EventEmitter } from 'node:events';

export const WEBSOCKET_REMOTE_COMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io'];
export const WEBSOCKET_PORT_FORWARD_PROTOCOLS = ['v4.portforward.k8s.io', 'portforward.k8s.io', 'base64.portforward.k8s.io'];

export class WebSocketConnection extends EventEmitter {
  constructor(readonly socket: Socket, readonly protocol: string) {
    super();
  }
}

export function acceptWebSocket(_req: IncomingMessage, socket: Socket, _head: Buffer, _supported: string[]): WebSocketConnection | undefined {
  socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  return undefined;
}
