// Status: RuntimeReady and NetworkReady, and with verbose the effective config.
import { basename } from 'node:path';
import type { RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import type { BerthConfig } from '../config/config.js';
import type { NetworkReadiness } from '../network/network-readiness.js';
import type { RuntimeSettings } from './runtime-config.js';

export interface StatusDeps {
  config: BerthConfig;
  network: NetworkReadiness;
  /** What the kubelet told berth with UpdateRuntimeConfig. */
  settings: RuntimeSettings;
}

export function statusHandler(deps: StatusDeps): UnaryHandler<typeof RuntimeService.method.status> {
  return async (request) => {
    const network = await deps.network.check();
    const info: Record<string, string> = {};
    if (request.verbose) {
      info.config = JSON.stringify(deps.config);
      info.network = JSON.stringify(network);
      info.runtimeConfig = JSON.stringify(deps.settings);
    }
    return {
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          {
            type: 'NetworkReady',
            status: network.ready,
            reason: network.ready ? '' : 'NetworkPluginNotReady',
            message: network.ready ? '' : `Network plugin returns error: ${network.message}`,
          },
        ],
      },
      info,
      // As containerd does: the default handler under the empty name, then each by name.
      runtimeHandlers: ['', ...Object.keys(deps.config.runtimes).sort()].map((name) => ({
        name,
        // berth builds recursive read-only trees itself, whatever the runtime; user
        // namespaces (a pod's own, with a rootfs whose owners berth shifts) are tested with runc.
        features: { recursiveReadOnlyMounts: true, userNamespaces: basename(deps.config.runtimes[name || deps.config.default_runtime]?.path ?? '') === 'runc' },
      })),
    };
  };
}
