// berthctl version: the runtime's name and versions.
import { VersionResponseSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, type CriClients } from '../runtime-client.js';
import { formatStructured, messageJson, type OutputFormat } from '../output.js';

export async function versionCommand(clients: CriClients, format: OutputFormat): Promise<string> {
  const r = await call('getting the runtime version', () =>
    clients.runtime.version({ version: '0.1.0' }, { timeoutMs: clients.settings.timeoutMs }),
  );
  if (format !== 'table') return formatStructured(messageJson(VersionResponseSchema, r), format);
  // crictl prints these with Go's Println, hence the two spaces.
  return [
    `Version:  ${r.version}`,
    `RuntimeName:  ${r.runtimeName}`,
    `RuntimeVersion:  ${r.runtimeVersion}`,
    `RuntimeApiVersion:  ${r.runtimeApiVersion}`,
  ].join('\n') + '\n';
}
