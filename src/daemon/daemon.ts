// berthd's life: claim the socket, serve the CRI behind the start-up gate, recover
// state, open the gate; on SIGTERM/SIGINT stop serving and remove the socket.
import { IdleMemoryReleaser } from './idle-memory.js';
import { mkdir, unlink } from 'node:fs/promises';
import type { Logger } from '../util/logger.js';
import { ImageService, RuntimeService } from '../gen/runtime/v1/api_pb.js';
import { ImagePullProgress, ImageTransfer } from '../gen/berth/v1/berth_pb.js';
import { imageTransferHandlers } from '../api/image-transfer.js';
import { GrpcServer } from '../server/grpc-server.js';
import { serveOnUnixSocket } from '../server/unix-server.js';
import { implementService, type CallOutcome } from '../server/rpc-wrapper.js';
import { imageHandlers, runtimeHandlers } from '../cri/runtime-service.js';
import { cniNetworkReadiness } from '../network/network-readiness.js';
import { StartupGate } from '../server/startup-gate.js';
import { bindRootOnly, claimSocketPath } from '../server/unix-socket-path.js';
import { socketPathOf, type BerthConfig } from '../config/config.js';
import { BERTH_VERSION } from '../version.js';
import { ImageManager } from '../image/image-manager.js';
import { RegistryClient } from '../image/registry-client.js';
import { parseDuration } from '../util/duration.js';
import { CniManager } from '../network/cni.js';
import { SandboxManager } from '../pod/sandbox-manager.js';
import { ContainerManager } from '../container/container-manager.js';
import { ContainerEvents } from '../events/container-events.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import type { ContainerRecord } from '../container/container-types.js';
import { join } from 'node:path';
import { StreamServer } from '../stream/server.js';
import { forwardPort } from '../pod/port-forward.js';
import { BerthdMetrics } from '../metrics/berthd-metrics.js';
// Loaded only when [metrics] address is set: it brings node:http (~1.4 MB resident; idle memory).
import type { MetricsServer } from '../metrics/metrics-server.js';
import { parseHostPort } from '../config/config.js';
import { checkSystemdAvailable } from '../linux/systemd-scope.js';
import { watchPullHandler } from '../api/image-pull-progress.js';

export interface RunningDaemon {
  readonly socketPath: string;
  /** Stops serving (in-flight calls get a grace period) and removes the socket. */
  stop(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 5000;

export async function startDaemon(config: BerthConfig, log: Logger): Promise<RunningDaemon> {
  // Before anything is claimed: without systemd every container would fail to start.
  if (config.cgroup_driver === 'systemd') await checkSystemdAvailable();
  const socketPath = socketPathOf(config.listen);
  await claimSocketPath(socketPath);
  await mkdir(config.root, { recursive: true, mode: 0o711 });
  await mkdir(config.state, { recursive: true, mode: 0o711 });

  const gate = new StartupGate();
  // The managers are made below; the scrape-time counts read them through these.
  let inventory: { pods: SandboxManager; containers: ContainerManager; images: ImageManager } | undefined;
  const metrics = new BerthdMetrics({
    containerStates: () => inventory?.containers.list().map((c) => c.state) ?? [],
    podStates: () => inventory?.pods.list().map((p) => p.state) ?? [],
    oomKilledContainers: () => inventory?.containers.list().filter((c) => c.reason === 'OOMKilled').length ?? 0,
    images: () => inventory?.images.list().length ?? 0,
  });
  const images = new ImageManager({
    onPulled: (bytes) => metrics.recordPullBytes(bytes),
    root: config.root,
    registry: new RegistryClient({ registries: config.registries, progressTimeoutMs: parseDuration(config.image_pull_progress_timeout) }),
    pinnedImages: config.pinned_images,
    log,
  });
  // Container events: a client more than 1024 events behind is dropped (it relists).
  const events = new ContainerEvents<SandboxRecord, ContainerRecord>({
    capacity: 1024,
    onDrop: (subscriber, capacity) => log.warn({ subscriber, capacity }, 'dropping a GetContainerEvents client that fell behind; it has to list again'),
  });
  const cni = new CniManager({ confDir: config.cni.conf_dir, binDirs: config.cni.bin_dirs, cacheDir: join(config.root, 'cni-cache') });
  const pods = new SandboxManager({
    root: config.root,
    state: config.state,
    cgroupDriver: config.cgroup_driver,
    cni,
    log,
    events,
  });
  const containers = new ContainerManager({ config, images, pods, log, events });
  events.setSnapshotSource((podId) => ({ pod: pods.find(podId), containers: containers.ofPod(podId) }));
  pods.attachContainers(containers);
  inventory = { pods, containers, images };
  const streams = new StreamServer({
    address: config.stream.address,
    port: config.stream.port,
    log,
    backends: {
      exec: (request, io) => containers.execStream(request, io),
      attach: (request, io) => containers.attach(request, io),
      portForward: async (podId, port, stream, signal) => {
        const pod = pods.get(podId);
        await forwardPort(pod.netns, port, stream, signal);
      },
    },
  });
  await streams.start();
  // Bound before the CRI socket serves, so a port in use fails start-up at once.
  let metricsServer: MetricsServer | undefined;
  if (config.metrics.address) {
    const { host, port } = parseHostPort(config.metrics.address);
    const { startMetricsServer } = await import('../metrics/metrics-server.js');
    metricsServer = await startMetricsServer({ host, port, families: () => metrics.families(), log });
    log.info({ url: `http://${metricsServer.address}/metrics` }, 'metrics endpoint listening');
  }
  const deps = { streams, config, network: cniNetworkReadiness(config.cni.conf_dir), images, pods, containers, events, settings: { podCidr: '' } };
  // The memory a run of calls leaves is given back once they pause (idle-memory.ts).
  const idleMemory = new IdleMemoryReleaser({
    onRelease: ({ heapBefore, heapAfter, ms }) => log.debug({ heapBeforeMb: +(heapBefore / 1048576).toFixed(1), heapAfterMb: +(heapAfter / 1048576).toFixed(1), ms: Math.round(ms) }, 'calls paused: heap compacted'),
  });
  if (!idleMemory.enabled) log.debug({}, "started without berthd's #! node flags: memory left by calls is given back only when V8 decides");
  const onCall = (call: CallOutcome) => {
    metrics.recordCall(call);
    idleMemory.noteCall();
  };
  // Image manifests and container lists can exceed grpc-go's 4 MiB default.
  const server = new GrpcServer({ maxReceiveMessageBytes: 16 * 1024 * 1024, maxSendMessageBytes: 64 * 1024 * 1024 });
  server.addService(implementService(RuntimeService, runtimeHandlers(deps), { gate, log, onCall }));
  server.addService(implementService(ImageService, imageHandlers(deps), { gate, log, onCall }));
  server.addService(implementService(ImageTransfer, imageTransferHandlers(images), { gate, log, onCall }));
  server.addService(implementService(ImagePullProgress, { watchPull: watchPullHandler(images) }, { gate, log, onCall }));

  const listener = await bindRootOnly(socketPath, () => serveOnUnixSocket(server, socketPath));
  log.info({ socket: socketPath, version: BERTH_VERSION, root: config.root, state: config.state }, 'berthd listening');

  // Recovery: the gate keeps clients out until every store is loaded and the leftovers
  // of a crash (partial downloads and unpacks, unreferenced content) are collected.
  gate.setPhase('recovering state');
  // Containers hold the snapshots of their images (even removed ones): garbage is
  // collected once they are loaded.
  images.holdSnapshots(() => containers.heldSnapshots());
  await images.init({ collect: false });
  await pods.recover();
  await containers.recover();
  await images.collectLeftovers();
  gate.open();
  // Exits found by recovery (they happened while berthd was down) reach the clients that subscribe next.
  events.hub.open();
  log.info('start-up recovery finished; serving');

  let stopping: Promise<void> | undefined;
  return {
    socketPath,
    stop() {
      stopping ??= (async () => {
        // Event streams never end by themselves: they end first, so the server can drain.
        events.hub.close();
        containers.close();
        idleMemory.close();
        await metricsServer?.close();
        await server.shutdown(SHUTDOWN_GRACE_MS);
        await listener.close();
        await streams.stop();
        await unlink(socketPath).catch(() => undefined);
        log.info('berthd stopped');
      })();
      return stopping;
    },
  };
}
