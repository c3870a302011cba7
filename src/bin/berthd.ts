#!/usr/bin/env -S node --max-semi-space-size=2
// berthd: the berth CRI daemon. (V8's young generation is capped at 2 MB per semi-space:
// a daemon's garbage is short-lived and small, and the default 16 MB costs ~30 MB of
// resident memory that is never given back; measured with bench/lifecycle.)
import { Command } from 'commander';
import { configToToml, loadConfig, type BerthConfig, type ConfigOverrides } from '../config/config.js';
import { createLogger } from '../daemon/logger.js';
import { startDaemon, type RunningDaemon } from '../daemon/daemon.js';
import { BERTH_VERSION } from '../version.js';

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

const program = new Command('berthd')
  .description('berth: a Kubernetes container runtime serving the CRI on a unix socket')
  .version(BERTH_VERSION)
  .option('--config <path>', 'config file (default /etc/berth/berth.toml)')
  .option('--listen <endpoint>', 'CRI socket, unix:///PATH')
  .option('--root <dir>', 'persistent state: images, snapshots, metadata')
  .option('--state <dir>', 'runtime state: namespaces, exit files, sockets')
  .option('--log-level <level>', 'trace, debug, info, warn, error or fatal')
  .action(async (flags: DaemonFlags) => {
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
  });

program
  .command('config')
  .description('print the effective configuration as TOML')
  .action(() => {
    try {
      process.stdout.write(configToToml(effectiveConfig(program.opts<DaemonFlags>())));
    } catch (err) {
      fail(err);
    }
  });

await program.parseAsync();
