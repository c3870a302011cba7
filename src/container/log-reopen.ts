// ReopenContainerLog: conmon reopens the container's log file (after the kubelet rotated
// it) when asked through its control fifo. Never waits on a conmon that is gone: the
// fifo is opened without blocking.
import { open, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { failedPrecondition, internal } from '../errors.js';

/** Asks conmon (through its control fifo ctl) to reopen logFile, and waits until it exists again. */
export async function reopenLog(id: string, ctlPath: string, logFile: string): Promise<void> {
  let ctl;
  try {
    ctl = await open(ctlPath, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw failedPrecondition(`container ${id}: conmon is not listening (${(err as NodeJS.ErrnoException).code})`);
  }
  try {
    await ctl.write('2 0 0\n');
  } finally {
    await ctl.close();
  }
  for (let i = 0; i < 40; i++) {
    if (await stat(logFile).then(() => true, () => false)) return;
    await sleep(50);
  }
  throw internal(`container ${id}: conmon did not reopen ${logFile}`);
}
