// GetContainerEvents: the container lifecycle as a stream, for the kubelet's evented
// PLEG. Each event carries the pod's status and every container status of the pod as
// they were when it happened (what the kubelet builds the pod's status from). A client
// that falls behind is dropped with RESOURCE_EXHAUSTED (the kubelet relists at once
// and subscribes again); berthd stopping ends every stream with UNAVAILABLE, as
// containerd's does.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ContainerEventType, type ContainerEventResponseSchema, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { ServerStreamHandler } from '../server/grpc-service.js';
import { BerthError, unavailable } from '../errors.js';
import type { ContainerManager } from '../container/container-manager.js';
import type { ContainerRecord } from '../container/container-types.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import type { ContainerEvent, ContainerEventKind, ContainerEvents } from '../events/container-events.js';
import { toCriSandboxStatus } from './sandbox-translate.js';
import { toCriContainerStatus } from './container-translate.js';

/** The events box as berthd wires it: snapshots of pod and container records. */
export type PodEvents = ContainerEvents<SandboxRecord, ContainerRecord>;
export type PodEvent = ContainerEvent<SandboxRecord, ContainerRecord>;

const eventTypes: Record<ContainerEventKind, ContainerEventType> = {
  created: ContainerEventType.CONTAINER_CREATED_EVENT,
  started: ContainerEventType.CONTAINER_STARTED_EVENT,
  stopped: ContainerEventType.CONTAINER_STOPPED_EVENT,
  deleted: ContainerEventType.CONTAINER_DELETED_EVENT,
};

export function toCriContainerEvent(event: PodEvent, containers: Pick<ContainerManager, 'imageRefOf'>): MessageInitShape<typeof ContainerEventResponseSchema> {
  return {
    containerId: event.containerId,
    containerEventType: eventTypes[event.kind],
    createdAt: event.createdAt,
    podSandboxStatus: event.pod ? toCriSandboxStatus(event.pod) : undefined,
    containersStatuses: event.containers.map((c) => toCriContainerStatus(c, containers.imageRefOf(c))),
  };
}

export function getContainerEventsHandler(events: PodEvents, containers: ContainerManager): ServerStreamHandler<typeof RuntimeService.method.getContainerEvents> {
  return async (_request, ctx, send) => {
    const subscription = events.subscribe();
    try {
      for (;;) {
        const event = await subscription.next(ctx.signal);
        if (event === undefined) break;
        await send(toCriContainerEvent(event, containers));
      }
    } finally {
      subscription.close();
    }
    if (ctx.signal.aborted) return;
    const reason = subscription.endReason;
    if (reason?.kind === 'overflow') {
      throw new BerthError('ResourceExhausted', `container events: this client fell ${reason.capacity} events behind and was dropped; list again and resubscribe`);
    }
    throw unavailable('container events subscription closed by the server');
  };
}
