#!/usr/bin/env -S MALLOC_ARENA_MAX=1 node --max-semi-space-size=1 --expose-gc-as=berthGc
// berthd: the berth CRI daemon. (V8's young generation is capped at 1 MB per semi-space:
// a daemon's garbage is short-lived and small, and the default 16 MB costs ~30 MB of
// resident memory that is never given back; measured with bench/lifecycle. 1 MB against
// 2: ~1 MB less resident, the same CPU per status call, measured A/B. The gc extension,
// as berthGc, is for daemon/idle-memory.ts: a compacting GC once calls pause.
// glibc's malloc, for idle memory too: one arena instead of one per thread that mallocs
// (V8's GC and compiler threads, libuv's pool: each arena keeps ~0.5-1 MB of its peak
// after a run of calls): ~2 MB less after calls and at idle, measured A/B (README,
// Benchmarks). glibc reads it once at start-up; it is dropped from berthd's environment
// below, so the host tools berthd runs do not get it.)
import { parseArgs } from 'node:util';
import { configToToml, loadConfig, type BerthConfig, type ConfigOverrides } from '../config/config.js';
import { createLogger } from '../daemon/logger.js';
import { startDaemon, type RunningDaemon } from '../daemon/daemon.js';
import { BERTH_VERSION } from '../version.js';

delete process.env.MALLOC_ARENA_MAX;

interface DaemonFlags {
  config?: string;
  listen?: string;
  root?: string;
  state?: string;
  logLevel?: string;
}

function effectiveConfig(flags: DaemonFlags): BerthConfig {
  const overrides: ConfigOverrides = {
    listen: flags.listen?.startsWith('/') ? `unix://${flags.listen}` : flags.listen,
    root: flags.root,
    state: flags.state,
    log_level: flags.logLevel,
  };
  return loadConfig({ path: flags.config, overrides });
}

function fail(err: unknown): never {
  process.stderr.write(`berthd: ${(err as Error).message}\n`);
  process.exit(1);
}

// node:util's parseArgs, not commander: berthd's few flags do not pay for a CLI library
// resident for the daemon's whole life (idle memory). berthctl keeps commander.
const OPTIONS = {
  config: { type: 'string', description: 'config file (default /etc/berth/berth.toml)', arg: 'path' },
  listen: { type: 'string', description: 'CRI socket, unix:///PATH', arg: 'endpoint' },
  root: { type: 'string', description: 'persistent state: images, snapshots, metadata', arg: 'dir' },
  state: { type: 'string', description: 'runtime state: namespaces, exit files, sockets', arg: 'dir' },
  'log-level': { type: 'string', description: 'trace, debug, info, warn, error or fatal', arg: 'level' },
  version: { type: 'boolean', short: 'V', description: 'output the version number' },
  help: { type: 'boolean', short: 'h', description: 'display help for command' },
} as const;

const HELP = [
  'Usage: berthd [options] [command]',
  '',
  'berth: a Kubernetes container runtime serving the CRI on a unix socket',
  '',
  'Options:',
  ...Object.entries(OPTIONS).map(([name, o]) => {
    const flag = `${'short' in o ? `-${o.short}, ` : ''}--${name}${'arg' in o ? ` <${o.arg}>` : ''}`;
    return `  ${flag.padEnd(26)}${o.description}`;
  }),
  '',
  'Commands:',
  `  ${'config'.padEnd(26)}print the effective configuration as TOML`,
  '',
].join('\n');

function parseFlags(): { flags: DaemonFlags; command?: string; version?: boolean; help?: boolean } {
  const parsed = parseArgs({ options: OPTIONS, allowPositionals: true, strict: true });
  const { values, positionals } = parsed;
  if (positionals.length > 1 || (positionals[0] !== undefined && positionals[0] !== 'config')) {
    throw new Error(`unknown command '${positionals.join(' ')}' (berthd --help lists them)`);
  }
  const flags: DaemonFlags = { config: values.config, listen: values.listen, root: values.root, state: values.state, logLevel: values['log-level'] };
  return { flags, command: positionals[0], version: values.version, help: values.help };
}

async function serve(flags: DaemonFlags): Promise<void> {
  let config: BerthConfig;
  try {
    config = effectiveConfig(flags);
  } catch (err) {
    fail(err);
  }
  const log = createLogger(config.log_level);
  // Signals are handled from the start: a SIGTERM during start-up recovery must still
  // end in a clean stop (socket removed, exit 0), not in the default kill.
  let daemon: RunningDaemon | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    if (daemon) daemon.stop().then(() => process.exit(0), (err: unknown) => fail(err));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    log.fatal({ error: (err as Error).message }, 'berthd could not start');
    fail(err);
  }
  if (stopping) daemon.stop().then(() => process.exit(0), (err: unknown) => fail(err));
}

let cli: ReturnType<typeof parseFlags>;
try {
  cli = parseFlags();
} catch (err) {
  fail(err);
}
if (cli.help) {
  process.stdout.write(HELP);
} else if (cli.version) {
  process.stdout.write(`${BERTH_VERSION}\n`);
} else if (cli.command === 'config') {
  try {
    process.stdout.write(configToToml(effectiveConfig(cli.flags)));
  } catch (err) {
    fail(err);
  }
} else {
  await serve(cli.flags);
}
