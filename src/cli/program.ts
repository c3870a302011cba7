// berthctl's command line: crictl's global flags, every verb with its flags, and the
// glue that connects, runs a command body and prints what it returns.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { CriClients } from './runtime-client.js';
import { resolveSettings, type GlobalFlags } from './settings.js';
import { parseOutputFormat, type OutputFormat } from './output.js';
import { parseDuration } from '../util/duration.js';
import { BERTH_VERSION } from '../version.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_CRICTL_CONFIG } from './settings.js';
import type { ContainerFilter, ContainerPull } from './commands/containers.js';
import { STREAM_TRANSPORTS, type StreamTransport } from './stream-transports.js';

// Each verb's module (and what it imports: gRPC, the CRI descriptors, WebSocket, tar…)
// is loaded when that verb runs, not at every start: berthctl's start-up is mostly
// module loading, and `berthctl version` needs a fraction of it.
const images = () => import('./commands/images.js');
const containers = () => import('./commands/containers.js');
const pods = () => import('./commands/pods.js');
const extras = () => import('./commands/runtime-extras.js');

/** A command body that loads its module on first call. */
function lazy<M, K extends keyof M>(load: () => Promise<M>, name: K): M[K] {
  return (async (...args: unknown[]) => ((await load())[name] as (...a: unknown[]) => unknown)(...args)) as M[K];
}

const versionCommand = lazy(() => import('./commands/version.js'), 'versionCommand');
const infoCommand = lazy(() => import('./commands/info.js'), 'infoCommand');
const exportCommand = lazy(images, 'exportCommand');
const imageFsInfoCommand = lazy(images, 'imageFsInfoCommand');
const imagesCommand = lazy(images, 'imagesCommand');
const importCommand = lazy(images, 'importCommand');
const inspectImageCommand = lazy(images, 'inspectImageCommand');
const pullCommand = lazy(images, 'pullCommand');
const removeImagesCommand = lazy(images, 'removeImagesCommand');
const createContainerCommand = lazy(containers, 'createContainerCommand');
const execSyncCommand = lazy(containers, 'execSyncCommand');
const execCommand = lazy(containers, 'execCommand');
const attachCommand = lazy(containers, 'attachCommand');
const portForwardCommand = lazy(containers, 'portForwardCommand');
const podStatsCommand = lazy(containers, 'podStatsCommand');
const statsCommand = lazy(containers, 'statsCommand');
const updateCommand = lazy(containers, 'updateCommand');
const inspectContainersCommand = lazy(containers, 'inspectContainersCommand');
const logsCommand = lazy(containers, 'logsCommand');
const psCommand = lazy(containers, 'psCommand');
const removeContainersCommand = lazy(containers, 'removeContainersCommand');
const runContainerCommand = lazy(containers, 'runContainerCommand');
const startContainersCommand = lazy(containers, 'startContainersCommand');
const stopContainersCommand = lazy(containers, 'stopContainersCommand');
const inspectPodCommand = lazy(pods, 'inspectPodCommand');
const podsCommand = lazy(pods, 'podsCommand');
const removePodsCommand = lazy(pods, 'removePodsCommand');
const runPodCommand = lazy(pods, 'runPodCommand');
const stopPodsCommand = lazy(pods, 'stopPodsCommand');
const checkpointCommand = lazy(extras, 'checkpointCommand');
const eventsCommand = lazy(extras, 'eventsCommand');
const podMetricsCommand = lazy(extras, 'podMetricsCommand');
const metricDescriptorsCommand = lazy(extras, 'metricDescriptorsCommand');
const runtimeConfigCommand = lazy(extras, 'runtimeConfigCommand');
const updateRuntimeConfigCommand = lazy(extras, 'updateRuntimeConfigCommand');
const configCommand = lazy(() => import('./commands/config.js'), 'configCommand');

/** The formats of the status documents (inspect*, info, imagefsinfo), as crictl's. */
const WITH_TEMPLATE: OutputFormat[] = ['json', 'yaml', 'go-template', 'table'];

/** A signed whole number (crictl's --max-retries: negative means forever). */
function integer(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`needs a whole number, not "${value}"`);
  return Number(value);
}

/** A repeatable flag's values, in order. */
const collect = (value: string, all: string[] = []) => [...all, value];

/** A numeric flag's value: a whole number, or a usage error naming it (never NaN). */
function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`needs a whole number, not "${value}"`);
  return Number(value);
}

/** berthctl's commands and flags, as crictl's; each action prints its output. */
export function berthctlProgram(): Command {
  const program = new Command('berthctl')
    .description('A crictl-compatible client for CRI runtimes (berthd, containerd, CRI-O)')
    .version(BERTH_VERSION, '-v, --version', 'print the berthctl version')
    .addOption(new Option('-r, --runtime-endpoint <endpoint>', 'runtime endpoint, unix:///path').env('CONTAINER_RUNTIME_ENDPOINT'))
    .addOption(new Option('-i, --image-endpoint <endpoint>', 'image endpoint (default: the runtime endpoint)').env('IMAGE_SERVICE_ENDPOINT'))
    .option('-t, --timeout <duration>', 'timeout of each call, e.g. 2s, 20s (default 2s)')
    .addOption(new Option('-c, --config <file>', 'client config file (default /etc/crictl.yaml)').env('CRI_CONFIG_FILE'))
    .option('-D, --debug', 'enable debug output')
    .option('--max-retries <n>', 'retries for connecting to an endpoint that was set, with exponential back-off (0: none, negative: forever; default 3, or the config file\'s max-retries)', integer)
    .option('--enable-tracing', 'accepted as crictl\'s: berthctl exports no OpenTelemetry spans (berthd records none), so this changes nothing')
    .option('--tracing-endpoint <address>', 'where crictl would send spans; unused by berthctl (see --enable-tracing)', '127.0.0.1:4317')
    .option('--tracing-sampling-rate-per-million <n>', 'crictl\'s span sampling rate; unused by berthctl (see --enable-tracing)', integer, -1)
    .option('--profile-cpu <file>', 'write a V8 CPU profile of this run (.cpuprofile JSON, for Chrome DevTools) to the file')
    .option('--profile-mem <file>', 'write a V8 heap snapshot (.heapsnapshot) taken at the end of this run to the file')
    // As with crictl, global flags come before the command; a command's own flags (runp -r) after it.
    .enablePositionalOptions()
    // Bad usage is one line naming the command and where its help is (exit status 1),
    // never a help dump.
    .configureOutput({ outputError: usageError('berthctl') })
    // crictl's `help, h`: a verb of its own (commander's built-in one has no alias).
    .helpCommand(false);

  program.hook('preAction', async (_program, action) => {
    // urfave/cli (crictl's parser) refuses a flag given in both its forms (-a and --annotation).
    // (commander keeps the argv it parsed as rawArgs, outside its typings.)
    const tokens = (program as unknown as { rawArgs: string[] }).rawArgs.slice(2);
    const verbAt = tokens.findIndex((t) => t === action.name() || action.aliases().includes(t));
    const twice = bothForms(program, tokens.slice(0, Math.max(0, verbAt))) ?? (action === program ? undefined : bothForms(action, tokens.slice(verbAt + 1)));
    if (twice) (twice.where === program ? program : action).error(`Cannot use two forms of the same flag: ${twice.names}`);

    const { profileCpu, profileMem } = program.opts<{ profileCpu?: string; profileMem?: string }>();
    if (profileCpu || profileMem) (await import('./profiling.js')).startProfiling({ cpu: profileCpu, mem: profileMem });
  });

  /** Runs a command body with connected clients, printing its output; errors exit 1 like crictl. */
  function withClients(body: (clients: CriClients) => Promise<string>): Promise<void> {
    return (async () => {
      const settings = resolveSettings(program.opts<GlobalFlags>());
      if (settings.maxRetries !== 0 && settings.endpointSet) {
        const debug = settings.debug ? (line: string) => process.stderr.write(`berthctl: ${line}\n`) : undefined;
        await (await import('./connect-retry.js')).waitForEndpoint(settings.runtimeEndpoint, settings.maxRetries, debug);
      }
      const { connect } = await import('./runtime-client.js');
      const clients = connect(settings);
      try {
        process.stdout.write(await body(clients));
      } catch (err) {
        // crictl: no id and nothing a filter picks is logged, and the status is 0.
        if (!(err instanceof Error && err.name === 'NothingSelected')) throw err;
        process.stderr.write(`berthctl: ${err.message}\n`);
      } finally {
        clients.close();
      }
    })();
  }

  /**
   * crictl's --watch: the body again every 500 ms (each output starts with its own
   * clear-screen) until Ctrl-C or a failed call.
   */
  function watching(body: (clients: CriClients) => Promise<string>): Promise<void> {
    return withClients(async (c) => {
      let stop = false;
      process.once('SIGINT', () => (stop = true));
      while (!stop) {
        process.stdout.write(await body(c));
        await sleep(500);
      }
      return '';
    });
  }

  /** The config file `config` reads and writes: --config, CRI_CONFIG_FILE, /etc/crictl.yaml. */
  const configPath = () => program.opts<GlobalFlags>().config ?? process.env.CRI_CONFIG_FILE ?? DEFAULT_CRICTL_CONFIG;

  /** The streaming transport (crictl's --transport): SPDY/3.1 or WebSocket. */
  const transportOption = () =>
    new Option('-r, --transport <transport>', `streaming transport: ${STREAM_TRANSPORTS.join('|')}`).choices(STREAM_TRANSPORTS).default('spdy');

  /** crictl's TLS flags for an https streaming URL (exec, attach, port-forward). */
  const withTlsFlags = (command: Command) => command
    .option('--tls-ca <file>', 'CA certificate of an https streaming server')
    .option('--tls-cert <file>', 'client certificate for an https streaming server (with --tls-key)')
    .option('--tls-key <file>', 'client key for an https streaming server (with --tls-cert)')
    .option('--tls-sni, --tls-server-name <name>', 'server name checked against the streaming server\'s certificate', 'localhost');
  const tlsOf = (opts: TlsFlags) => ({ ca: opts.tlsCa, cert: opts.tlsCert, key: opts.tlsKey, serverName: opts.tlsServerName });

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
    .addOption(outputOption('json', ['json', 'yaml', 'go-template', 'table']))
    .option('-q, --quiet', 'only the conditions, without the runtime\'s verbose info')
    .option('--template <template>', 'a Go template, used with -o go-template', '')
    .action((opts: { output: string; template: string; quiet?: boolean }) => withClients((c) => infoCommand(c, parseOutputFormat(opts.output, 'json', WITH_TEMPLATE), opts.template, !opts.quiet)));

  program
    .command('pull')
    .description('pull an image from a registry')
    .argument('<image>', 'image reference, e.g. busybox or 127.0.0.1:5000/app:1.0')
    .addOption(new Option('--creds <user:password>', 'registry credentials').env('CRICTL_CREDS'))
    .addOption(new Option('--auth <base64>', 'base64 of user:password, as in a docker config').env('CRICTL_AUTH'))
    .option('-u, --username <name>', 'registry user name (no password)')
    .addOption(new Option('--pt, --pull-timeout <duration>', 'give up after this long; 0 means never').default('0s').env('CRICTL_PULL_TIMEOUT'))
    .option('--pod-config <file>', 'a pod sandbox config (JSON or YAML) sent with the pull')
    .option('-a, --annotation <key=value>', 'an annotation of the pulled image (repeatable)', collect)
    .action((image: string, opts: { creds?: string; auth?: string; username?: string; pullTimeout: string; podConfig?: string; annotation?: string[] }) =>
      withClients((c) =>
        pullCommand(c, image, {
          creds: opts.creds,
          auth: opts.auth,
          username: opts.username,
          podConfig: opts.podConfig,
          annotations: opts.annotation,
          pullTimeoutMs: parseDuration(opts.pullTimeout),
          progress: process.stdout.isTTY ? process.stdout : undefined,
        }),
      ),
    );

  const listImages = (command: Command) => command
    .argument('[repository]', 'only images this name refers to')
    .option('-q, --quiet', 'only image ids')
    .option('--digests', 'show digests')
    .option('-v, --verbose', 'verbose output')
    .option('--no-trunc', 'show whole ids and digests')
    .option('--pinned', 'show whether each image is pinned')
    .option('-f, --filter <condition>', 'dangling=true|false, reference=REGEXP, before=IMAGE, since=IMAGE (repeatable, all must hold)', collect)
    .addOption(outputOption('table', ['json', 'yaml', 'table']))
    .action((repository: string | undefined, opts: { quiet?: boolean; digests?: boolean; verbose?: boolean; trunc: boolean; pinned?: boolean; filter?: string[]; output: string }) =>
      withClients((c) =>
        imagesCommand(c, repository, {
          quiet: opts.quiet ?? false,
          digests: opts.digests ?? false,
          verbose: opts.verbose ?? false,
          noTrunc: !opts.trunc,
          pinned: opts.pinned ?? false,
          filters: opts.filter ?? [],
          output: parseOutputFormat(opts.output, 'table'),
        }),
      ),
    );

  listImages(program.command('images').alias('img').description('list images'));

  const imageGroup = program.command('image').description('list, import and export images');
  listImages(imageGroup.command('ls', { isDefault: true }).alias('list').description('list images (as `images`)'));
  imageGroup
    .command('import')
    .description('import an OCI layout or docker save archive into berthd')
    .argument('<archive>', 'tar archive path')
    .option('--name <reference>', 'a name for the image, replacing the archive\'s (repeatable)', (value: string, all: string[] = []) => [...all, value])
    .action((archive: string, opts: { name?: string[] }) => withClients((c) => importCommand(c, archive, opts.name ?? [])));
  imageGroup
    .command('export')
    .description('export images from berthd as an archive (OCI layout with docker\'s manifest.json)')
    .argument('<image...>', 'image ids or references')
    .requiredOption('-f, --file <archive>', 'tar archive to write')
    .action((images: string[], opts: { file: string }) => withClients((c) => exportCommand(c, images, opts.file)));

  program
    .command('inspecti')
    .description('show the status of one or more images')
    .argument('[image...]', 'image ids or references (none: the images --name and --filter pick)')
    .addOption(outputOption('json', ['json', 'yaml', 'go-template', 'table']))
    .option('-q, --quiet', 'without the runtime\'s verbose info')
    .option('--template <template>', 'a Go template, used with -o go-template', '')
    .option('--name <image>', 'without ids: the images this name refers to')
    .option('-f, --filter <condition>', 'without ids: dangling=true|false, reference=REGEXP, before=IMAGE, since=IMAGE (repeatable)', collect)
    .action((names: string[], opts: { output: string; template: string; quiet?: boolean; name?: string; filter?: string[] }) =>
      withClients((c) => inspectImageCommand(c, names, parseOutputFormat(opts.output, 'json', WITH_TEMPLATE), opts.template, !opts.quiet, { name: opts.name, filters: opts.filter ?? [] })),
    );

  program
    .command('rmi')
    .description('remove one or more images')
    .argument('[image...]', 'image ids or references')
    .option('-a, --all', 'remove all images')
    .option('-q, --prune', 'remove all images no container uses')
    .action((names: string[], opts: { all?: boolean; prune?: boolean }) =>
      withClients((c) => removeImagesCommand(c, names, { all: opts.all ?? false, prune: opts.prune ?? false })),
    );

  program
    .command('imagefsinfo')
    .description('show image filesystem usage')
    .addOption(outputOption('json', ['json', 'yaml', 'go-template', 'table']))
    .option('--template <template>', 'a Go template, used with -o go-template', '')
    .action((opts: { output: string; template: string }) => withClients((c) => imageFsInfoCommand(c, parseOutputFormat(opts.output, 'json', WITH_TEMPLATE), opts.template)));

  program
    .command('runp')
    .description('run a new pod sandbox')
    .argument('<pod-config>', 'pod sandbox config file (JSON or YAML)')
    .option('-r, --runtime <handler>', 'runtime handler (default: the runtime\'s default)', '')
    .addOption(cancelTimeoutOption())
    .action((configPath: string, opts: { runtime: string; cancelTimeout: string }) => withClients((c) => runPodCommand(c, configPath, opts.runtime, parseDuration(opts.cancelTimeout))));

  program
    .command('pods')
    .description('list pod sandboxes')
    .option('--id <id>', 'only pods whose id starts with this')
    .option('--name <regexp>', 'only pods whose name matches')
    .option('--namespace <regexp>', 'only pods whose namespace matches')
    .option('--label <key=value>', 'only pods with this label (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('-s, --state <state>', 'ready or notready')
    .option('-q, --quiet', 'only pod ids')
    .option('-v, --verbose', 'verbose output')
    .option('--no-trunc', 'show whole ids')
    .option('-l, --latest', 'only the newest pod')
    .option('-n, --last <n>', 'only the newest n pods', wholeNumber)
    .addOption(outputOption('table', ['json', 'yaml', 'table']))
    .action((opts: { id?: string; name?: string; namespace?: string; label?: string[]; state?: string; quiet?: boolean; verbose?: boolean; trunc: boolean; latest?: boolean; last?: number; output: string }) =>
      withClients((c) =>
        podsCommand(c, {
          id: opts.id,
          name: opts.name,
          namespace: opts.namespace,
          labels: opts.label ?? [],
          state: opts.state,
          quiet: opts.quiet ?? false,
          verbose: opts.verbose ?? false,
          noTrunc: !opts.trunc,
          latest: opts.latest ?? false,
          last: opts.last,
          output: parseOutputFormat(opts.output, 'table'),
        }),
      ),
    );

  program
    .command('inspectp')
    .description('show the status of one or more pod sandboxes')
    .argument('[pod-id...]', 'pod ids (none: the pods the filters pick)')
    .addOption(outputOption('json', ['json', 'yaml', 'go-template', 'table']))
    .option('-q, --quiet', 'without the runtime\'s verbose info')
    .option('--template <template>', 'a Go template, used with -o go-template', '')
    .option('--name <regexp>', 'without ids: pods whose name matches')
    .option('--namespace <regexp>', 'without ids: pods whose namespace matches')
    .option('--label <key=value>', 'without ids: pods with this label (repeatable)', collect)
    .option('-s, --state <state>', 'without ids: ready or notready')
    .option('-l, --latest', 'without ids: the newest pod')
    .option('-n, --last <n>', 'without ids: the newest n pods (0: all)', wholeNumber)
    .action((ids: string[], opts: { output: string; template: string; quiet?: boolean; name?: string; namespace?: string; label?: string[]; state?: string; latest?: boolean; last?: number }) =>
      withClients((c) =>
        inspectPodCommand(c, ids, parseOutputFormat(opts.output, 'json', WITH_TEMPLATE), opts.template, !opts.quiet, {
          name: opts.name, namespace: opts.namespace, labels: opts.label ?? [], state: opts.state, latest: opts.latest ?? false, last: opts.last,
        }),
      ),
    );

  program
    .command('stopp')
    .description('stop one or more pod sandboxes')
    .argument('<pod-id...>')
    .action((ids: string[]) => withClients((c) => stopPodsCommand(c, ids)));

  program
    .command('rmp')
    .description('remove one or more pod sandboxes')
    .argument('[pod-id...]')
    .option('-a, --all', 'remove all pods')
    .option('-f, --force', 'stop running pods first')
    .action((ids: string[], opts: { all?: boolean; force?: boolean }) => withClients((c) => removePodsCommand(c, ids, { all: opts.all ?? false, force: opts.force ?? false })));

  withPullFlags(program
    .command('create')
    .description('create a new container in a pod')
    .argument('<pod-id>')
    .argument('<container-config>', 'container config file (JSON or YAML)')
    .argument('<pod-config>', 'the pod\'s config file (JSON or YAML)'))
    .action((podId: string, containerConfig: string, podConfig: string, opts: PullFlags) =>
      withClients((c) => createContainerCommand(c, podId, containerConfig, podConfig, pullChoice(opts, c.settings.pullImageOnCreate), parseDuration(opts.cancelTimeout))),
    );

  program
    .command('start')
    .description('start one or more created containers')
    .argument('<container-id...>')
    .action((ids: string[]) => withClients((c) => startContainersCommand(c, ids)));

  withPullFlags(program
    .command('run')
    .description('run a new container inside a new pod (runp + create + start)')
    .argument('<container-config>')
    .argument('<pod-config>')
    .option('-r, --runtime <handler>', 'runtime handler', ''))
    .action((containerConfig: string, podConfig: string, opts: PullFlags & { runtime: string }) =>
      withClients((c) => runContainerCommand(c, containerConfig, podConfig, opts.runtime, pullChoice(opts, !c.settings.disablePullOnRun), parseDuration(opts.cancelTimeout))),
    );

  const ps = program
    .command('ps')
    .description('list containers')
    .option('--id <id>', 'only the container with this id');
  withContainerFilterFlags(ps, 'only')
    .option('-q, --quiet', 'only container ids')
    .option('--no-trunc', 'show whole ids')
    .option('-v, --verbose', 'every field of each container')
    .option('-r, --resolve-image-path', 'the image\'s name (its first repo tag) instead of the image id')
    .addOption(outputOption('table', ['json', 'yaml', 'table']))
    .action((opts: { all?: boolean; id?: string; namespace?: string; pod?: string; name?: string; label?: string[]; state?: string; image?: string; quiet?: boolean; trunc: boolean; output: string; verbose?: boolean; latest?: boolean; last?: number; resolveImagePath?: boolean }) =>
      withClients((c) =>
        psCommand(c, {
          id: opts.id,
          namespace: opts.namespace,
          all: opts.all ?? false,
          latest: opts.latest,
          resolveImagePath: opts.resolveImagePath,
          pod: opts.pod,
          name: opts.name,
          labels: opts.label ?? [],
          state: opts.state,
          image: opts.image,
          quiet: opts.quiet ?? false,
          noTrunc: !opts.trunc,
          output: parseOutputFormat(opts.output, 'table'),
          verbose: opts.verbose ?? false,
          last: opts.last,
        }),
      ),
    );

  withContainerFilterFlags(program
    .command('inspect')
    .description('show the status of one or more containers')
    .argument('[container-id...]', 'container ids (none: the containers the filters pick)')
    .addOption(outputOption('json', ['json', 'yaml', 'go-template', 'table']))
    .option('-q, --quiet', 'without the runtime\'s verbose info')
    .option('--template <template>', 'a Go template, used with -o go-template', ''), 'without ids:')
    .action((ids: string[], opts: ContainerFilterFlags & { output: string; template: string; quiet?: boolean }) =>
      withClients((c) => inspectContainersCommand(c, ids, parseOutputFormat(opts.output, 'json', WITH_TEMPLATE), opts.template, !opts.quiet, containerFilter(opts))),
    );

  program
    .command('stop')
    .description('stop one or more running containers')
    .argument('[container-id...]')
    .option('-t, --timeout <seconds>', 'seconds before SIGKILL', wholeNumber, 10)
    .option('-a, --all', 'stop every running container')
    .action((ids: string[], opts: { timeout: number; all?: boolean }) => {
      if (opts.all && ids.length > 0) throw new Error('cannot specify CONTAINER-ID(s) when using --all');
      if (!opts.all && ids.length === 0) throw new Error('you must specify at least one CONTAINER-ID or use --all');
      return withClients(async (c) => {
        const targets = opts.all ? (await containers()).listContainers(c, { labels: [], all: false }).then((list) => list.map((x) => x.id)) : ids;
        return stopContainersCommand(c, await targets, opts.timeout);
      });
    });

  program
    .command('rm')
    .description('remove one or more containers')
    .argument('[container-id...]')
    .option('-a, --all', 'remove all containers')
    .option('-f, --force', 'stop running containers first')
    .option('-k, --keep-logs', 'keep the container\'s log file and its rotations (removed by default, as crictl)')
    .action((ids: string[], opts: { all?: boolean; force?: boolean; keepLogs?: boolean }) =>
      withClients((c) => removeContainersCommand(c, ids, { all: opts.all ?? false, force: opts.force ?? false, keepLogs: opts.keepLogs ?? false })),
    );

  program
    .command('logs')
    .description('show a container\'s logs')
    .argument('<container-id>')
    .option('-f, --follow', 'follow the log until the container exits')
    .option('--tail <lines>', 'only the last lines', wholeNumber)
    .option('-t, --timestamps', 'show timestamps')
    .option('--since <time>', 'only lines since an RFC 3339 time or a duration ago (42m)')
    .option('-p, --previous', "the previous attempt's log")
    .option('--limit-bytes <n>', 'at most this many bytes', wholeNumber)
    .option('-r, --reopen', 'ask the runtime to reopen the log file first (ReopenContainerLog)')
    .option('-s, --stream <stream>', 'only stdout or stderr (default both)')
    .action((id: string, opts: { follow?: boolean; tail?: number; timestamps?: boolean; since?: string; previous?: boolean; limitBytes?: number; reopen?: boolean; stream?: string }) =>
      withClients(async (c) => {
        if (opts.stream !== undefined && opts.stream !== 'stdout' && opts.stream !== 'stderr') throw new Error(`invalid stream "${opts.stream}", must be "stdout" or "stderr"`);
        if (opts.tail !== undefined && opts.stream !== undefined) throw new Error('--tail and --stream are mutually exclusive');
        const options = {
          stream: opts.stream as 'stdout' | 'stderr' | undefined,
          reopen: opts.reopen ?? false,
          follow: opts.follow ?? false,
          tail: opts.tail,
          timestamps: opts.timestamps ?? false,
          sinceMs: opts.since === undefined ? undefined : (await containers()).parseSince(opts.since),
          previous: opts.previous ?? false,
          limitBytes: opts.limitBytes,
        };
        await logsCommand(c, id, options, (text, stream) =>
          (stream === 'stdout' ? process.stdout : process.stderr).write(text),
        );
        return '';
      }),
    );

  const exec = withTlsFlags(program
    .command('exec')
    .description('run a command in a running container (streaming; --sync: ExecSync)')
    .argument('[container-id]', 'the container (absent when a filter flag picks the containers)')
    .argument('[command...]')
    .option('-i, --interactive', 'keep stdin open and pass it to the command')
    .option('-t, --tty', 'allocate a terminal')
    .option('-s, --sync', 'run the command synchronously (ExecSync)')
    .addOption(transportOption())
    .option('--timeout <seconds>', 'with --sync: kill the command after this many seconds (0: never)', wholeNumber, 0)
    .option('-p, --pod <pod-id>', 'filter: in the containers of this pod')
    .option('--name <regexp>', 'filter: in the containers whose name matches')
    .option('--image <image>', 'filter: in the containers of this image')
    .option('--state <state>', 'filter: in the containers in this state (default running)')
    .option('--label <key=value>', 'filter: in the containers with this label (repeatable)', collect)
    .option('-l, --latest', 'filter: in the most recently created container')
    .option('-n, --last <n>', 'filter: in the n most recently created containers (0: all)', wholeNumber)
    .option('-x, --parallel', 'with a filter: run in every container at once (no "ID:" lines)')
    .option('-q, --quiet', 'with a filter: do not print each container\'s "ID:" line')
    .option('-e, --ignore-errors', 'exit 0 whatever the commands do'))
    .passThroughOptions()
    .action((id: string | undefined, command: string[], opts: ExecFlags) => {
      // As crictl: with a filter flag there is no container id, every argument is the command.
      const filtered = ['pod', 'name', 'image', 'state', 'label', 'latest', 'last'].some((k) => exec.getOptionValueSource(k) === 'cli');
      if (filtered && id !== undefined) command = [id, ...command];
      if (!filtered && id === undefined) exec.error("missing required argument 'container-id'");
      if (command.length === 0) exec.error("missing required argument 'command'");
      return withClients(async (c) => {
        const module = await containers();
        const ids = filtered ? (await module.listContainers(c, containerFilter({ ...opts, all: false }))).map((x) => x.id) : [id!];
        if (ids.length === 0) throw Object.assign(new Error('No containers found per filter flags'), { name: 'NothingSelected' });
        const header = filtered && !opts.quiet && !opts.parallel;
        const one = async (target: string): Promise<number> => {
          if (header) process.stdout.write(`${target}:\n`);
          if (opts.sync) {
            const result = await execSyncCommand(c, target, command, opts.timeout);
            process.stdout.write(result.stdout);
            process.stderr.write(result.stderr);
            return result.exitCode;
          }
          return execCommand(c, target, command, { stdin: opts.interactive ?? false, tty: opts.tty ?? false, transport: opts.transport, tls: tlsOf(opts) });
        };
        let codes: number[] = [];
        let failure: unknown;
        const guarded = (target: string) => one(target).catch((err: unknown) => {
          failure ??= err;
          return 1;
        });
        if (opts.parallel) codes = await Promise.all(ids.map(guarded));
        else for (const target of ids) codes.push(await guarded(target));
        if (opts.ignoreErrors) return '';
        if (failure !== undefined) throw failure;
        process.exitCode = codes.find((code) => code !== 0) ?? 0;
        return '';
      });
    });

  withTlsFlags(program
    .command('attach')
    .description("attach to a running container's stdio")
    .argument('<container-id>')
    .option('-i, --stdin', 'pass stdin to the container')
    .option('-t, --tty', 'the container has a terminal')
    .addOption(transportOption()))
    .action((id: string, opts: TlsFlags & { stdin?: boolean; tty?: boolean; transport: StreamTransport }) =>
      withClients(async (c) => {
        process.exitCode = await attachCommand(c, id, { stdin: opts.stdin ?? false, tty: opts.tty ?? false, transport: opts.transport, tls: tlsOf(opts) });
        return '';
      }),
    );

  withTlsFlags(program
    .command('port-forward')
    .description("forward a local port to a pod's port")
    .argument('<pod-id>')
    .argument('<ports>', '[ADDRESS:]LOCAL:REMOTE (LOCAL 0: any free port)')
    .addOption(transportOption()))
    .action((id: string, ports: string, opts: TlsFlags & { transport: StreamTransport }) =>
      withClients(async (c) => {
        await portForwardCommand(c, id, ports, (line) => process.stdout.write(`${line}\n`), opts.transport, tlsOf(opts));
        return '';
      }),
    );

  program
    .command('stats')
    .description('list container resource usage (running containers unless --all)')
    .argument('[container-id]')
    .option('-a, --all', 'stopped containers too')
    .option('--id <container-id>', 'only this container')
    .option('-p, --pod <pod-id>', 'only containers of this pod')
    .option('--label <key=value>', 'only containers with this label (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('-s, --seconds <n>', 'sample duration for CPU usage, in seconds', wholeNumber, 1)
    .option('-w, --watch', 'watch the usage (refreshed until Ctrl-C)')
    .addOption(outputOption('table', ['json', 'yaml', 'table']))
    .action((id: string | undefined, opts: { all?: boolean; id?: string; pod?: string; label?: string[]; seconds: number; output: string; watch?: boolean }) =>
      (opts.watch ? watching : withClients)((c) =>
        statsCommand(c, { id: opts.id || id, pod: opts.pod, labels: opts.label, all: opts.all ?? false, sampleMs: opts.seconds * 1000, output: parseOutputFormat(opts.output, 'table') }),
      ),
    );

  program
    .command('statsp')
    .description('list pod resource usage')
    .argument('[pod-id]')
    .option('--id <pod-id>', 'only this pod')
    .option('--label <key=value>', 'only pods with this label (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('-s, --seconds <n>', 'sample duration for CPU usage, in seconds', wholeNumber, 1)
    .option('-w, --watch', 'watch the usage (refreshed until Ctrl-C)')
    .addOption(outputOption('table', ['json', 'yaml', 'table']))
    .action((id: string | undefined, opts: { id?: string; label?: string[]; seconds: number; output: string; watch?: boolean }) =>
      (opts.watch ? watching : withClients)((c) => podStatsCommand(c, { id: opts.id || id, labels: opts.label, sampleMs: opts.seconds * 1000, output: parseOutputFormat(opts.output, 'table') })),
    );

  program
    .command('update')
    .description('update the CPU and memory limits of containers')
    .argument('<container-id...>')
    .option('--cpu-share <shares>', 'CPU shares', wholeNumber)
    .option('--cpu-quota <us>', 'CPU CFS quota', wholeNumber)
    .option('--cpu-period <us>', 'CPU CFS period', wholeNumber)
    .option('--memory <bytes>', 'memory limit in bytes', wholeNumber)
    .option('--cpuset-cpus <cpus>', 'CPUs to use, e.g. 0-2,4')
    .option('--cpuset-mems <nodes>', 'memory nodes to use')
    .option('--oom-score-adj <score>', 'OOM killer score adjustment', integer)
    .option('--cpu-count <n>', '(Windows only) number of CPUs', wholeNumber)
    .option('--cpu-maximum <n>', '(Windows only) share of CPU cycles, a percentage times 100', wholeNumber)
    .action((ids: string[], opts: { cpuShare?: number; cpuQuota?: number; cpuPeriod?: number; memory?: number; cpusetCpus?: string; cpusetMems?: string; oomScoreAdj?: number; cpuCount?: number; cpuMaximum?: number }) =>
      withClients((c) =>
        updateCommand(c, ids, {
          cpuShares: opts.cpuShare, cpuQuota: opts.cpuQuota, cpuPeriod: opts.cpuPeriod, memory: opts.memory,
          cpusetCpus: opts.cpusetCpus, cpusetMems: opts.cpusetMems, oomScoreAdj: opts.oomScoreAdj, cpuCount: opts.cpuCount, cpuMaximum: opts.cpuMaximum,
        }),
      ),
    );

  program
    .command('events')
    .alias('event')
    .description('stream the events of containers')
    .addOption(outputOption('json', ['json', 'yaml', 'go-template']))
    .option('--template <template>', 'a Go template, used with -o go-template', '')
    .action((opts: { output: string; template: string }) =>
      withClients((c) => eventsCommand(c, parseOutputFormat(opts.output, 'json', ['json', 'yaml', 'go-template']), opts.template, (text) => process.stdout.write(text))),
    );

  program
    .command('metricsp')
    .description('list pod metrics (ListPodSandboxMetrics)')
    .addOption(outputOption('json', ['json', 'yaml']))
    .option('-w, --watch', 'refresh until Ctrl-C')
    .action((opts: { output: string; watch?: boolean }) => (opts.watch ? watching : withClients)((c) => podMetricsCommand(c, parseOutputFormat(opts.output, 'json', ['json', 'yaml']))));

  program
    .command('metricdescs')
    .description('list metric descriptors (ListMetricDescriptors)')
    .addOption(outputOption('json', ['json', 'yaml']))
    .action((opts: { output: string }) => withClients((c) => metricDescriptorsCommand(c, parseOutputFormat(opts.output, 'json', ['json', 'yaml']))));

  program
    .command('runtime-config')
    .description('show the runtime configuration (RuntimeConfig)')
    .action(() => withClients((c) => runtimeConfigCommand(c)));

  const updateRuntimeConfig = program
    .command('update-runtime-config')
    .description('update the runtime configuration (UpdateRuntimeConfig)')
    .option('-p, --pod-cidr <cidr>', 'the new CIDR of pod IP addresses (empty: the runtime should leave it out)')
    .action((opts: { podCidr?: string }) => {
      // crictl: without a flag, the verb's help (status 0).
      if (opts.podCidr === undefined) return updateRuntimeConfig.outputHelp();
      return withClients((c) => updateRuntimeConfigCommand(c, opts.podCidr));
    });

  program
    .command('checkpoint')
    .description('checkpoint one or more running containers')
    .argument('<container-id...>')
    .option('-e, --export <archive>', 'the tar archive (/path/to/checkpoint.tar) the checkpoint is written to')
    .action((ids: string[], opts: { export?: string }) => withClients((c) => checkpointCommand(c, ids, opts.export)));

  const config = program
    .command('config')
    .description('get, set and list crictl configuration options (crictl.yaml)')
    .argument('[key]')
    .argument('[value]')
    .option('--get <key>', 'show the option value')
    .option('--set <key=value>', 'set options (repeatable, or key=value,key=value)', (v: string, all: string[] = []) => [...all, v])
    .option('--list', 'show every option')
    .action(async (key: string | undefined, value: string | undefined, opts: { get?: string; set?: string[]; list?: boolean }) => {
      const out = await configCommand(configPath(), { get: opts.get, set: opts.set ?? [], list: opts.list ?? false, args: key === undefined ? [] : [key, value ?? ''] });
      if (out === undefined) config.outputHelp();
      else process.stdout.write(out);
    });

  program
    .command('completion')
    .description('print shell completion code (bash, zsh or fish)')
    .argument('[shell]', 'bash, zsh or fish', 'bash')
    .action(async (shell: string) => {
      const { completionScript } = await import('./commands/completion.js');
      process.stdout.write(completionScript(program, shell));
    });

  program
    .command('help')
    .alias('h')
    .description('show the list of commands, or the help of one')
    .argument('[command]')
    .action((name: string | undefined) => {
      if (name === undefined) return program.outputHelp();
      const command = program.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (!command) throw new Error(`No help topic for '${name}'`);
      command.outputHelp();
    });

  for (const command of program.commands) command.configureOutput({ outputError: usageError(`berthctl ${command.name()}`) });
  return program;
}

interface PullFlags {
  withPull?: boolean;
  pull: boolean;
  creds?: string;
  auth?: string;
  username?: string;
  pullTimeout: string;
  cancelTimeout: string;
}

/** crictl's --cancel-timeout (-T): a deadline for the request, 0s for none of one's own. */
const cancelTimeoutOption = () => new Option('-T, --cancel-timeout <duration>', 'give up the request after this long (0s: berthctl\'s own long deadline)').default('0s');

/** create's and run's flags for pulling the image first (crictl's), and their --cancel-timeout. */
function withPullFlags(command: Command): Command {
  return command
    .option('--with-pull', 'pull the image first')
    .option('--no-pull', 'do not pull the image')
    .addOption(new Option('--creds <user:password>', 'registry credentials for the pull').env('CRICTL_CREDS'))
    .addOption(new Option('--auth <base64>', 'base64 of user:password for the pull').env('CRICTL_AUTH'))
    .option('-u, --username <name>', 'registry user name for the pull')
    .addOption(new Option('--pt, --pull-timeout <duration>', 'give up the pull after this long; 0 means never').default('0s').env('CRICTL_PULL_TIMEOUT'))
    .addOption(cancelTimeoutOption());
}

interface TlsFlags {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName: string;
}

/** The filter flags of ps, inspect and exec (crictl's listOptions). */
interface ContainerFilterFlags {
  all?: boolean;
  pod?: string;
  name?: string;
  namespace?: string;
  label?: string[];
  state?: string;
  image?: string;
  latest?: boolean;
  last?: number;
}

/** The list filters of ps and inspect (crictl's), their help starting with `lead`. */
function withContainerFilterFlags(command: Command, lead: string): Command {
  return command
    .option('-a, --all', `${lead} every state, not only running containers`)
    .option('-p, --pod <pod-id>', `${lead} containers of this pod`)
    .option('--name <regexp>', `${lead} containers whose name matches`)
    .option('--namespace <regexp>', `${lead} containers whose pod namespace matches`)
    .option('--label <key=value>', `${lead} containers with this label (repeatable)`, collect)
    .option('-s, --state <state>', `${lead} containers in this state: created, running, exited or unknown`)
    .option('--image <image>', `${lead} containers of this image`)
    .option('-l, --latest', `${lead} the most recently created container (any state)`)
    .option('-n, --last <n>', `${lead} the n most recently created containers (any state; 0: all)`, wholeNumber);
}

function containerFilter(opts: ContainerFilterFlags): ContainerFilter {
  return { all: opts.all ?? false, pod: opts.pod, name: opts.name, namespace: opts.namespace, labels: opts.label ?? [], state: opts.state, image: opts.image, latest: opts.latest, last: opts.last };
}

interface ExecFlags extends ContainerFilterFlags, TlsFlags {
  interactive?: boolean;
  tty?: boolean;
  sync?: boolean;
  timeout: number;
  transport: StreamTransport;
  parallel?: boolean;
  quiet?: boolean;
  ignoreErrors?: boolean;
}

/** crictl's rule: --with-pull pulls, --no-pull does not, else the config's default; both is a conflict. */
function pullChoice(opts: PullFlags, byDefault: boolean): ContainerPull | undefined {
  if (opts.withPull && !opts.pull) throw new Error('conflict: no-pull and with-pull are both set');
  if (!(opts.withPull || (opts.pull && byDefault))) return undefined;
  return { creds: opts.creds, auth: opts.auth, username: opts.username, pullTimeoutMs: parseDuration(opts.pullTimeout) };
}

/**
 * The first option given in two of its forms among a command's leading flags (before its
 * first operand, where urfave/cli stops reading flags), named as urfave/cli names it
 * ("a annotation"); a value after a flag that takes one is skipped.
 */
function bothForms(command: Command, tokens: string[]): { where: Command; names: string } | undefined {
  const seen = new Map<Option, Set<string>>();
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token === '--' || !token.startsWith('-') || token === '-') break;
    const flag = token.split('=')[0]!;
    const option = command.options.find((o) => o.short === flag || o.long === flag || o.long === `--no-${flag.slice(2)}`);
    if (!option) continue;
    const forms = seen.get(option) ?? new Set<string>();
    forms.add(flag);
    seen.set(option, forms);
    if (forms.size > 1) return { where: command, names: [option.short, option.long].filter(Boolean).map((n) => n!.replace(/^-+/, '')).join(' ') };
    if ((option.required || option.optional) && !token.includes('=')) i++;
  }
  return undefined;
}

/** commander's usage errors as one line: "berthctl exec: missing required argument 'command' (see 'berthctl exec --help')". */
function usageError(name: string): (text: string, write: (text: string) => void) => void {
  return (text, write) => write(`${name}: ${text.replace(/^error: /, '').trim()} (see '${name} --help')\n`);
}
