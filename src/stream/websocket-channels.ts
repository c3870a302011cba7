import type { StreamBackends, PortForwardRequest, StreamIO } from './backends.js';
import type { StreamOptions } from './remote-command.js';
import type { WebSocketConnection } from './websocket.js';

export async function serveRemoteCommandWebSocket(_ws: WebSocketConnection, _options: StreamOptions, _run: (io: StreamIO) => Promise<number | void>): Promise<void> {}
export function servePortForwardWebSocket(_ws: WebSocketConnection, _request: PortForwardRequest, _query: URLSearchParams, _backends: StreamBackends): void {}
