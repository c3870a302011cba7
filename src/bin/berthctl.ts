#!/usr/bin/env node
// berthctl: a crictl-compatible command line for any CRI runtime (berthd by default).
import { Command, Option } from 'commander';
import { connect, CallError, type CriClients } from '../cli/runtime-client.js';
import { resolveSettings, type GlobalFlags } from '../cli/settings.js';
import { parseOutputFormat, type OutputFormat } from '../cli/output.js';
import { versionCommand } from '../cli/commands/version.js';
import { infoCommand } from '../cli/commands/info.js';
import { BERTH_VERSION } from '../version.js';

const program = new Command('berthctl')
  .description('A crictl-compatible client for CRI runtimes (berthd, containerd, CRI-O)')
  .version(BERTH_VERSION, '-v, --version', 'print the berthctl version')
  .addOption(new Option('-r, --runtime-endpoint <endpoint>', 'runtime endpoint, unix:///path').env('CONTAINER_RUNTIME_ENDPOINT'))
  .addOption(new Option('-i, --image-endpoint <endpoint>', 'image endpoint (default: the runtime endpoint)').env('IMAGE_SERVICE_ENDPOINT'))
  .option('-t, --timeout <duration>', 'timeout of each call, e.g. 2s, 20s (default 2s)')
  .addOption(new Option('-c, --config <file>', 'client config file (default /etc/crictl.yaml)').env('CRI_CONFIG_FILE'))
  .option('-D, --debug', 'enable debug output')
  .showHelpAfterError();

/** Runs a command body with connected clients, printing its output; errors exit 1 like crictl. */
function withClients(body: (clients: CriClients) => Promise<string>): Promise<void> {
  return (async () => {
    const clients = connect(resolveSettings(program.opts<GlobalFlags>()));
    try {
      process.stdout.write(await body(clients));
    } finally {
      clients.close();
    }
  })();
}

const outputOption = (fallback: OutputFormat, allowed: OutputFormat[]) =>
  new Option('-o, --output <format>', `output format: ${allowed.join('|')}`).default(fallback);

program
  .command('version')
  .description('display runtime version information')
  .addOption(outputOption('table', ['json', 'yaml', 'table']))
  .action((opts: { output: string }) =>
    withClients((c) => versionCommand(c, parseOutputFormat(opts.output, 'table'))),
  );

program
  .command('info')
  .description('display information of the container runtime')
  .addOption(outputOption('json', ['json', 'yaml', 'table']))
  .action((opts: { output: string }) => withClients((c) => infoCommand(c, parseOutputFormat(opts.output, 'json'))));

try {
  await program.parseAsync();
} catch (err) {
  const message = err instanceof CallError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`berthctl: ${message}\n`);
  process.exitCode = 1;
}
