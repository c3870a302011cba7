// berth-csi's wiring: the volume manager, the three CSI services behind server/'s one RPC
// wrapper, served on a unix socket by berth's own HTTP/2 transport (the kubelet and the CSI
// sidecars are grpc-go clients).
import type { Logger } from '../util/logger.js';
import { Controller, Identity, Node } from '../gen/csi/v1/csi_pb.js';
import { GrpcServer } from '../server/grpc-server.js';
import { implementService } from '../server/rpc-wrapper.js';
import { StartupGate } from '../server/startup-gate.js';
import { serveOnUnixSocket } from '../server/unix-server.js';
import { bindRootOnly, claimSocketPath } from '../server/unix-socket-path.js';
import { invalidArgument } from '../errors.js';
import { unlink } from 'node:fs/promises';
import { VolumeManager } from '../volume/volume-manager.js';
import { BERTH_VERSION } from '../version.js';
import { identityHandlers } from './identity.js';
import { controllerHandlers } from './controller.js';
import { nodeHandlers } from './node.js';

export interface DriverOptions {
  /** unix:///PATH or /PATH. */
  endpoint: string;
  nodeId: string;
  stateDir: string;
  log: Logger;
}

export interface RunningDriver {
  readonly socketPath: string;
  stop(): Promise<void>;
}

export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('/')) return endpoint;
  throw invalidArgument(`endpoint "${endpoint}" is not unix:///PATH`);
}

export async function startDriver(options: DriverOptions): Promise<RunningDriver> {
  const { log, nodeId } = options;
  if (!nodeId) throw invalidArgument('a node id is required (--nodeid)');
  const socketPath = socketPathOf(options.endpoint);
  const gate = new StartupGate();
  const volumes = new VolumeManager(options.stateDir);
  const server = new GrpcServer();
  const deps = { gate, log, program: 'berth-csi' };
  server.addService(implementService(Identity, identityHandlers(volumes), deps));
  server.addService(implementService(Controller, controllerHandlers(volumes, nodeId), deps));
  server.addService(implementService(Node, nodeHandlers(volumes, nodeId), deps));

  await claimSocketPath(socketPath, 'berth-csi');
  const listener = await bindRootOnly(socketPath, () => serveOnUnixSocket(server, socketPath));
  gate.setPhase('loading volume records');
  for (const problem of await volumes.init()) log.warn({ problem }, 'state dir');
  gate.open();
  log.info({ socket: socketPath, nodeId, stateDir: options.stateDir, version: BERTH_VERSION }, 'berth-csi serving');

  let stopping: Promise<void> | undefined;
  return {
    socketPath,
    stop() {
      stopping ??= (async () => {
        await server.shutdown(5000);
        await listener.close();
        await unlink(socketPath).catch(() => undefined);
        log.info('berth-csi stopped');
      })();
      return stopping;
    },
  };
}
