// berthctl events, metricsp and checkpoint: crictl's verbs over GetContainerEvents,
// ListPodSandboxMetrics and CheckpointContainer, printed as crictl prints them.
import { CgroupDriver, ContainerEventResponseSchema, ListMetricDescriptorsResponseSchema, ListPodSandboxMetricsResponseSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, describeCallError, type CriClients } from '../runtime-client.js';
import { formatStructured, messageJson, type OutputFormat } from '../output.js';
import { checkGoTemplate, executeGoTemplate } from '../go-template.js';

/**
 * Streams container events until the runtime ends the stream (or the user interrupts):
 * each event as JSON or YAML (protojson, as crictl's outputEvent), or through a template.
 */
export async function eventsCommand(clients: CriClients, output: OutputFormat, template: string, write: (text: string) => void): Promise<string> {
  if ((output === 'json' || output === 'yaml') && template !== '') throw new Error(`template can't be used with "${output}" format`);
  if (output === 'go-template') {
    try {
      checkGoTemplate(template);
    } catch (err) {
      throw new Error(`failed to parse go-template: ${(err as Error).message}`);
    }
  } else if (output !== 'json' && output !== 'yaml') throw new Error(`don't support "${output}" format`);
  try {
    // No deadline: the stream lasts as long as the user watches.
    for await (const event of clients.runtime.getContainerEvents({})) {
      const doc = messageJson(ContainerEventResponseSchema, event);
      if (output === 'go-template') {
        try {
          write(executeGoTemplate(template, doc) + '\n');
        } catch (err) {
          write(`failed to format container event with the error: ${(err as Error).message}\n`);
        }
      } else write(formatStructured(doc, output));
    }
  } catch (err) {
    throw describeCallError('getting container events', err);
  }
  return '';
}

/** ListPodSandboxMetrics as JSON (crictl's default) or YAML. */
export async function podMetricsCommand(clients: CriClients, output: OutputFormat): Promise<string> {
  if (output !== 'json' && output !== 'yaml') throw new Error(`unsupported output format "${output}": use one of json, yaml`);
  const response = await call('get pod metrics: list pod sandbox metrics', () => clients.runtime.listPodSandboxMetrics({}, { timeoutMs: clients.settings.timeoutMs }));
  return formatStructured(messageJson(ListPodSandboxMetricsResponseSchema, response), output);
}

/** CheckpointContainer for each id, into the archive `exportPath`; prints each id, as crictl. */
export async function checkpointCommand(clients: CriClients, ids: string[], exportPath: string | undefined): Promise<string> {
  if (!exportPath) throw new Error('cannot checkpoint a container without specifying the checkpoint destination. Use --export=/path/to/checkpoint.tar');
  let out = '';
  for (const id of ids) {
    await call(`checkpointing the container "${id}" failed`, () =>
      clients.runtime.checkpointContainer({ containerId: id, location: exportPath }, { timeoutMs: clients.settings.timeoutMs }),
    );
    out += `${id}\n`;
  }
  return out;
}

/** ListMetricDescriptors as JSON (crictl's default) or YAML. */
export async function metricDescriptorsCommand(clients: CriClients, output: OutputFormat): Promise<string> {
  if (output !== 'json' && output !== 'yaml') throw new Error(`unsupported output format "${output}": use one of json, yaml`);
  const response = await call('list metric descriptors', () => clients.runtime.listMetricDescriptors({}, { timeoutMs: clients.settings.timeoutMs }));
  return formatStructured(messageJson(ListMetricDescriptorsResponseSchema, response), output);
}

/** RuntimeConfig as crictl's runtime-config prints it (a tabwriter of min width 10, padding 3). */
export async function runtimeConfigCommand(clients: CriClients): Promise<string> {
  const response = await call('get runtime config: call RuntimeConfig RPC', () => clients.runtime.runtimeConfig({}, { timeoutMs: clients.settings.timeoutMs }));
  if (!response.linux) return '';
  const label = 'cgroup driver:';
  return `${label.padEnd(Math.max(10, label.length + 3))}${CgroupDriver[response.linux.cgroupDriver]}\n`;
}

/**
 * update-runtime-config: UpdateRuntimeConfig with the pod CIDR when `podCidr` is given
 * (crictl sends an empty RuntimeConfig otherwise); prints nothing on stdout, as crictl
 * (its "Runtime config successfully updated" is a log line on stderr).
 */
export async function updateRuntimeConfigCommand(clients: CriClients, podCidr: string | undefined): Promise<string> {
  const runtimeConfig = podCidr === undefined ? {} : { networkConfig: { podCidr } };
  await call('update runtime config', () => clients.runtime.updateRuntimeConfig({ runtimeConfig }, { timeoutMs: clients.settings.timeoutMs }));
  process.stderr.write('Runtime config successfully updated\n');
  return '';
}
