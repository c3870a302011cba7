// Serving berth's gRPC server on a unix socket berth listens on itself, so that every
// connection passes through AuthorityRepair: old grpc-go clients (which send the
// socket's path as :authority) are answered as containerd answers them. Used by berthd
// and by the CSI driver, whose callers are grpc-go too.
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { acceptConnection } from './authority-repair.js';
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
    // A client that resets its connection must never take berthd down; the HTTP/2
    // session reports such errors on its own once it owns the socket.
    socket.on('error', () => undefined);
    // Node's HTTP/2 server takes any object with a stream's members it uses (see AuthorityRepair).
    acceptConnection(socket, (connection) => server.injectConnection(connection as unknown as Duplex));
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
