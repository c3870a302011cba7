// The filters the CRI List* calls share: id prefix, pod id prefix, label selector.
import type { ContainerRecord } from '../container/container-types.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';

export interface CommonFilter {
  id?: string;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

/** Every selector label present with the same value. */
export function matchesLabels(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([key, value]) => labels[key] === value);
}

export function filterContainers(records: ContainerRecord[], filter: CommonFilter | undefined): ContainerRecord[] {
  return records.filter(
    (r) =>
      (!filter?.id || r.id.startsWith(filter.id)) &&
      (!filter?.podSandboxId || r.podId.startsWith(filter.podSandboxId)) &&
      matchesLabels(r.spec.labels, filter?.labelSelector),
  );
}

export function filterPods(records: SandboxRecord[], filter: CommonFilter | undefined): SandboxRecord[] {
  return records.filter((r) => (!filter?.id || r.id.startsWith(filter.id)) && matchesLabels(r.spec.labels, filter?.labelSelector));
}
