// berthd's metrics, named after containerd's and CRI-O's. RPC counts and latencies are
// fed only by the RPC wrapper's onCall hook (`recordCall`); image pull bytes by the image
// manager's pull hook; containers, pods, images and OOM kills are counted from the
// managers' lists when scraped, through the `Inventory` the daemon supplies (this module
// knows no pod or container types).
import { BERTH_VERSION } from '../version.js';
import { Counter, Gauge, Histogram, type MetricFamily, type Sample } from './prometheus.js';

/** One finished RPC, as the wrapper's onCall hook reports it. */
export interface RpcCall {
  service: string;
  method: string;
  code: string;
  ms: number;
}

/** What is counted at scrape time, read from the managers. */
export interface Inventory {
  /** Every container's state (created, running, exited, unknown). */
  containerStates(): string[];
  /** Every pod's state (creating, ready, notready). */
  podStates(): string[];
  /** How many containers (still recorded) were last ended by the OOM killer. */
  oomKilledContainers(): number;
  images(): number;
}

/** States always reported, 0 when none is in them, so a dashboard's series never vanish. */
export const CONTAINER_STATES = ['created', 'running', 'exited', 'unknown'];
export const POD_STATES = ['creating', 'ready', 'notready'];

export class BerthdMetrics {
  readonly requests = new Counter('berth_grpc_requests_total', 'gRPC requests served, by method and gRPC status code.');
  readonly durations = new Histogram('berth_grpc_request_duration_seconds', 'Time to serve a gRPC request, by method, in seconds.');
  readonly pulls = new Counter('berth_image_pulls_total', 'PullImage requests ended, by result (success or failure).');
  readonly pullBytes = new Counter('berth_image_pull_bytes_total', 'Bytes downloaded from registries by successful image pulls (layers already present are not counted).');
  readonly #inventory: Inventory;

  constructor(inventory: Inventory) {
    this.#inventory = inventory;
  }

  /** The onCall hook of the RPC wrapper. */
  recordCall(call: RpcCall): void {
    this.requests.inc({ method: call.method, code: call.code });
    this.durations.observe({ method: call.method }, call.ms / 1000);
    if (call.method === 'PullImage') this.pulls.inc({ result: call.code === 'OK' ? 'success' : 'failure' });
  }

  /** The image manager's hook: an image was pulled, downloading this many bytes. */
  recordPullBytes(bytes: number): void {
    this.pullBytes.inc({}, bytes);
  }

  families(): MetricFamily[] {
    const inventory = this.#inventory;
    return [
      new Gauge('berth_build_info', 'berthd\'s version; the value is always 1.', () => [{ labels: { version: BERTH_VERSION }, value: 1 }]),
      this.requests,
      this.durations,
      this.pulls,
      this.pullBytes,
      new Gauge('berth_containers', 'Containers, by state.', () => byState(inventory.containerStates(), CONTAINER_STATES)),
      new Gauge('berth_pods', 'Pod sandboxes, by state.', () => byState(inventory.podStates(), POD_STATES)),
      new Gauge('berth_containers_oom_killed', 'Containers (not yet removed) whose last exit was a kill by the OOM killer.', () => [
        { labels: {}, value: inventory.oomKilledContainers() },
      ]),
      new Gauge('berth_images', 'Images in the image store.', () => [{ labels: {}, value: inventory.images() }]),
    ];
  }
}

function byState(states: string[], known: string[]): Sample[] {
  const counts = new Map(known.map((s) => [s, 0]));
  for (const state of states) counts.set(state, (counts.get(state) ?? 0) + 1);
  return [...counts].map(([state, value]) => ({ labels: { state }, value }));
}
