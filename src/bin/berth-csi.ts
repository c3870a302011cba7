#!/usr/bin/env node
// berth-csi: berth's CSI driver for node-local volumes (Identity, Controller and Node on
// one unix socket). Each volume is a sparse file under the state dir, formatted ext4 or XFS
// and loop-mounted.
import { hostname } from 'node:os';
import { Command } from 'commander';
import { startDriver, type RunningDriver } from '../csi/driver.js';
import { createJsonLogger, LOGGER_LEVELS, type LoggerLevel } from '../util/logger.js';
import { BERTH_VERSION } from '../version.js';

interface Flags {
  endpoint: string;
  nodeid: string;
  stateDir: string;
  logLevel: string;
}

const program = new Command('berth-csi')
  .description('berth-csi: a CSI driver for node-local volumes (sparse file + ext4 or XFS + loop device)')
  .version(BERTH_VERSION)
  .option('--endpoint <endpoint>', 'CSI socket, unix:///PATH', 'unix:///run/berth-csi/csi.sock')
  .option('--nodeid <id>', 'this node\'s id (default: the host name)', hostname())
  .option('--state-dir <dir>', 'volumes, snapshots and their records', '/var/lib/berth-csi')
  .option('--log-level <level>', 'trace, debug, info, warn, error or fatal', 'info')
  .action(async (flags: Flags) => {
    if (!(flags.logLevel in LOGGER_LEVELS) && flags.logLevel !== 'silent') {
      program.error(`berth-csi: --log-level ${flags.logLevel}: use one of ${Object.keys(LOGGER_LEVELS).join(', ')} or silent`, { exitCode: 2 });
    }
    const log = createJsonLogger({ level: flags.logLevel as LoggerLevel | 'silent', base: { pid: process.pid } });
    let driver: RunningDriver | undefined;
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      if (driver) driver.stop().then(() => process.exit(0), () => process.exit(1));
      else process.exit(0);
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    try {
      driver = await startDriver({ endpoint: flags.endpoint, nodeId: flags.nodeid, stateDir: flags.stateDir, log });
    } catch (err) {
      process.stderr.write(`berth-csi: ${(err as Error).message}\n`);
      process.exit(1);
    }
  });

await program.parseAsync();
