// The RuntimeService and ImageService handlers berthd serves. Each RPC family lives in
// its own file; methods not listed here answer UNIMPLEMENTED through the wrapper.
import type { RuntimeService, ImageService } from '../gen/runtime/v1/api_pb.js';
import type { MethodsOf, ServiceHandlers } from '../server/grpc-service.js';
import { version } from './runtime-version.js';
import { statusHandler, type StatusDeps } from './runtime-status.js';
import { pullImageHandler } from './image-pull.js';
import { imageStatusHandler, listImagesHandler } from './image-status.js';
import { removeImageHandler } from './image-remove.js';
import { imageFsInfoHandler } from './image-fs-info.js';
import type { ImageManager } from '../image/image-manager.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { ContainerManager } from '../container/container-manager.js';
import { containerHandlers } from './container-lifecycle.js';
import { statsHandlers } from './stats.js';
import { runtimeConfigHandler, updateRuntimeConfigHandler } from './runtime-config.js';
import { removePodSandboxHandler, runPodSandboxHandler, stopPodSandboxHandler } from './sandbox-run.js';
import { containerStreamHandlers } from './container-stream.js';
import { portForwardHandler } from './sandbox-port-forward.js';
import type { StreamUrls } from '../stream/backends.js';
import { listPodSandboxHandler, podSandboxStatusHandler } from './sandbox-status.js';
import { getContainerEventsHandler, type PodEvents } from './container-events.js';
import { updatePodSandboxResourcesHandler } from './sandbox-resources.js';
import { metricsHandlers } from './metrics.js';
import { LayerUsageCache } from '../container/container-stats.js';
import { parseDuration } from '../util/duration.js';
import { checkpointContainerHandler } from './container-checkpoint.js';
import { imageStreamHandlers, runtimeStreamHandlers } from './list-streams.js';

export interface CriDeps extends StatusDeps {
  images: ImageManager;
  pods: SandboxManager;
  containers: ContainerManager;
  streams: StreamUrls;
  events: PodEvents;
}

export function runtimeHandlers(deps: CriDeps): ServiceHandlers<MethodsOf<typeof RuntimeService>> {
  // The writable layers' usage, walked at most once per stats_collect_period, for the stats and the metrics calls.
  const layers = new LayerUsageCache(parseDuration(deps.config.stats_collect_period));
  const handlers = {
    version,
    status: statusHandler(deps),
    runtimeConfig: runtimeConfigHandler(deps.config),
    updateRuntimeConfig: updateRuntimeConfigHandler(deps.settings),
    runPodSandbox: runPodSandboxHandler(deps.pods, { defaultRuntime: deps.config.default_runtime, names: Object.keys(deps.config.runtimes) }),
    stopPodSandbox: stopPodSandboxHandler(deps.pods),
    removePodSandbox: removePodSandboxHandler(deps.pods),
    podSandboxStatus: podSandboxStatusHandler(deps.pods),
    listPodSandbox: listPodSandboxHandler(deps.pods),
    updatePodSandboxResources: updatePodSandboxResourcesHandler(deps.pods),
    ...containerHandlers(deps.containers, { seccompDefaultWhenEmpty: deps.config.seccomp_use_default_when_empty }),
    ...statsHandlers(deps.containers, deps.pods, deps.events.hub, layers),
    ...containerStreamHandlers(deps.containers, deps.streams),
    portForward: portForwardHandler(deps.pods, deps.streams),
    getContainerEvents: getContainerEventsHandler(deps.events, deps.containers),
    ...metricsHandlers(deps.containers, deps.pods, layers),
    checkpointContainer: checkpointContainerHandler(deps.containers),
  };
  // The Stream* twins of the List* calls: the same answers, sent in batches.
  return { ...handlers, ...runtimeStreamHandlers(handlers) };
}

export function imageHandlers(deps: CriDeps): ServiceHandlers<MethodsOf<typeof ImageService>> {
  const handlers = {
    pullImage: pullImageHandler(deps.images),
    imageStatus: imageStatusHandler(deps.images),
    listImages: listImagesHandler(deps.images),
    removeImage: removeImageHandler(deps.images, (id) => deps.containers.imageVolumeUser(id)),
    imageFsInfo: imageFsInfoHandler(deps.images),
  };
  return { ...handlers, ...imageStreamHandlers(handlers) };
}
