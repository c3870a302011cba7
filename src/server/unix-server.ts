// Serving berth's gRPC server on a unix socket berth listens on itself: each accepted
// connection goes to the server's own HTTP/2 transport. Used by berthd and by the CSI
// driver, whose callers are grpc-go too (old ones send the socket's path as :authority,
// which berth's transport takes as any other authority, as Go's HTTP/2 does).
import { createServer, type Server, type Socket } from 'node:net';
import type { GrpcServer } from './grpc-server.js';

export interface UnixListener {
  /** Stops accepting connections and ends those left (call after the gRPC server's shutdown). */
  close(): Promise<void>;
}

export function serveOnUnixSocket(server: GrpcServer, path: string): Promise<UnixListener> {
  const sockets = new Set<Socket>();
  const listener: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    server.injectConnection(socket);
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(path, () => {
      listener.off('error', reject);
      resolve({
        close: () =>
          new Promise<void>((done) => {
            listener.close(() => done());
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}
