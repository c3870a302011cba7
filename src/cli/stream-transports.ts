// The streaming transports berthctl speaks (crictl's --transport), apart from the client
// itself so that the command line can name them without loading WebSocket and SPDY code.
export type StreamTransport = 'spdy' | 'websocket';
export const STREAM_TRANSPORTS: StreamTransport[] = ['spdy', 'websocket'];
