#!/usr/bin/env node
// berthd: the berth CRI daemon.
import { Command } from 'commander';
import { configToToml, loadConfig, type BerthConfig, type ConfigOverrides } from '../daemon/config.js';
import { createLogger } from '../daemon/logger.js';
import { startDaemon } from '../daemon/daemon.js';
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
    let daemon;
    try {
      daemon = await startDaemon(config, log);
    } catch (err) {
      log.fatal({ error: (err as Error).message }, 'berthd could not start');
      fail(err);
    }
    const shutdown = (signal: string) => {
      log.info({ signal }, 'shutting down');
      daemon.stop().then(() => process.exit(0), (err: unknown) => fail(err));
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
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
