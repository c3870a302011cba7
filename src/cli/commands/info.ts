// berthctl info: the runtime's conditions and its verbose info map, in crictl's shape
// {"status": {...}, ...each info entry parsed as JSON}.
import { RuntimeStatusSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, type CriClients } from '../runtime-client.js';
import { formatStatusDocs, formatTable, messageJson, withInfo, type OutputFormat } from '../output.js';

/** info; `verbose: false` (crictl's -q) asks the runtime for its conditions only. */
export async function infoCommand(clients: CriClients, format: OutputFormat, template = '', verbose = true): Promise<string> {
  const r = await call('getting status of runtime', () => clients.runtime.status({ verbose }, { timeoutMs: clients.settings.timeoutMs }));
  if (format === 'table') {
    const conditions = r.status?.conditions ?? [];
    return formatTable(
      ['CONDITION', 'STATUS', 'REASON', 'MESSAGE'],
      conditions.map((c) => [c.type, String(c.status), c.reason, c.message]),
    );
  }
  // As crictl: runtimeHandlers and features through Go's encoding/json (the proto's
  // snake_case names, false and empty fields left out), not protojson.
  const head: Record<string, unknown> = r.status ? { status: messageJson(RuntimeStatusSchema, r.status) } : {};
  if (r.runtimeHandlers.length > 0) {
    head.runtimeHandlers = r.runtimeHandlers.map((h) => {
      const features = h.features && { ...(h.features.recursiveReadOnlyMounts ? { recursive_read_only_mounts: true } : {}), ...(h.features.userNamespaces ? { user_namespaces: true } : {}) };
      return { ...(h.name ? { name: h.name } : {}), ...(features ? { features } : {}) };
    });
  }
  if (r.features) {
    head.features = { ...(r.features.supplementalGroupsPolicy ? { supplemental_groups_policy: true } : {}), ...(r.features.userNamespacesHostNetwork ? { user_namespaces_host_network: true } : {}) };
  }
  return formatStatusDocs([withInfo(head, r.info)], format, template);
}
