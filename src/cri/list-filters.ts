// The filters the CRI List* calls share: id prefix, pod id prefix, label selector.
import type { ContainerRecord } from '../container/container-types.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';

export interface CommonFilter {
  id?: string;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

/**
 * The records a filter keeps. The kubelet's listings mostly ask with no filter, or one
 * field of it: the list is returned as it is when nothing filters, and the selector's
 * pairs are taken out once, not per record.
 */
function filtered<R extends { id: string; spec: { labels: Record<string, string> } }>(records: R[], filter: CommonFilter | undefined, podId?: (r: R) => string): R[] {
  const selector = Object.entries(filter?.labelSelector ?? {});
  const id = filter?.id;
  const pod = podId && filter?.podSandboxId;
  if (!id && !pod && selector.length === 0) return records;
  return records.filter(
    (r) =>
      (!id || r.id.startsWith(id)) &&
      (!pod || podId(r).startsWith(pod)) &&
      selector.every(([key, value]) => r.spec.labels[key] === value),
  );
}

export function filterContainers(records: ContainerRecord[], filter: CommonFilter | undefined): ContainerRecord[] {
  return filtered(records, filter, (r) => r.podId);
}

export function filterPods(records: SandboxRecord[], filter: CommonFilter | undefined): SandboxRecord[] {
  return filtered(records, filter);
}

/** True when a listing's filter asks for nothing but (perhaps) a state: the kubelet's polled listings. */
export function onlyState(filter: CommonFilter | undefined): boolean {
  return !filter || (!filter.id && !filter.podSandboxId && !hasLabels(filter));
}

/** True when the filter has a label selector with at least one pair. */
export function hasLabels(filter: CommonFilter | undefined): boolean {
  for (const _ in filter?.labelSelector) return true;
  return false;
}
