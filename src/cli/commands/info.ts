// berthctl info: the runtime's conditions and its verbose info map, in crictl's shape
// {"status": {...}, ...each info entry parsed as JSON}.
import { RuntimeStatusSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, type CriClients } from '../runtime-client.js';
import { formatStructured, formatTable, messageJson, withInfo, type OutputFormat } from '../output.js';

export async function infoCommand(clients: CriClients, format: OutputFormat): Promise<string> {
  const r = await call('getting status of runtime', () => clients.runtime.status({ verbose: true }, { timeoutMs: clients.settings.timeoutMs }));
  if (format === 'table') {
    const conditions = r.status?.conditions ?? [];
    return formatTable(
      ['CONDITION', 'STATUS', 'REASON', 'MESSAGE'],
      conditions.map((c) => [c.type, String(c.status), c.reason, c.message]),
    );
  }
  const out = withInfo(r.status ? { status: messageJson(RuntimeStatusSchema, r.status) } : {}, r.info);
  return formatStructured(out, format);
}
