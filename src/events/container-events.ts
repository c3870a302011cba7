// Container lifecycle events, what the CRI's GetContainerEvents streams to the kubelet's
// evented PLEG. The pod and container managers publish through the small
// ContainerEventPublisher interface they are given; each event carries a copy of the
// pod and of all its containers as they were at that moment (the kubelet builds the
// pod's status from the event alone, and a removed pod is gone by the time a slow
// client reads about it). Events of a pod itself carry the pod's id as container id,
// as containerd sends them. This box knows no pod or container types: P and C are
// whatever the snapshot source returns (the daemon wires the managers' records in).
import { EventHub, type HubOptions, type Subscription } from './event-hub.js';

export type ContainerEventKind = 'created' | 'started' | 'stopped' | 'deleted';

export interface ContainerEvent<P = unknown, C = unknown> {
  kind: ContainerEventKind;
  /** The container's id, or the pod's for an event of the pod itself. */
  containerId: string;
  podId: string;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
  /** Copies taken when the event happened; pod is undefined when it was already gone. */
  pod: P | undefined;
  containers: C[];
}

/** What the managers are given: they say what happened, the events box adds the rest. */
export interface ContainerEventPublisher {
  publish(kind: ContainerEventKind, containerId: string, podId: string): void;
}

/** A publisher that drops everything (managers used without an event stream, e.g. in tests). */
export const noContainerEvents: ContainerEventPublisher = { publish: () => undefined };

export type PodSnapshotSource<P, C> = (podId: string) => { pod: P | undefined; containers: C[] };

export class ContainerEvents<P, C> implements ContainerEventPublisher {
  readonly hub: EventHub<ContainerEvent<P, C>>;
  #snapshot: PodSnapshotSource<P, C> | undefined;

  constructor(options: HubOptions = {}) {
    this.hub = new EventHub<ContainerEvent<P, C>>(options);
  }

  /** Where pod and container state is read from: set once, when both managers exist. */
  setSnapshotSource(source: PodSnapshotSource<P, C>): void {
    if (this.#snapshot) throw new Error('the container events snapshot source is set already');
    this.#snapshot = source;
  }

  publish(kind: ContainerEventKind, containerId: string, podId: string): void {
    const { pod, containers } = this.#snapshot?.(podId) ?? { pod: undefined, containers: [] };
    this.hub.publish({
      kind,
      containerId,
      podId,
      createdAt: BigInt(Date.now()) * 1_000_000n,
      pod: pod && structuredClone(pod),
      containers: containers.map((c) => structuredClone(c)),
    });
  }

  subscribe(): Subscription<ContainerEvent<P, C>> {
    return this.hub.subscribe();
  }
}
