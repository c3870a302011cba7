// Commands in running containers: ExecSync (runc exec with an output cap and a
// timeout), streaming exec (pipes, or a terminal under conmon's exec mode) and attach
// (conmon's attach socket). The manager checks the container runs and hands it here.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { deadlineExceeded, internal } from '../errors.js';
import type { AttachRequest, ExecRequest, StreamIO } from '../stream/backends.js';
import { bundlePaths, execPidFile } from './bundle.js';
import type { ContainerRuntime } from './oci-runtime.js';
import { attachToConmon, execWithPipes, execWithTerminal } from './stream-sessions.js';

/** ExecSync keeps at most this much of each stream (what the kubelet's probes need). */
export const EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024;

/** The container an exec or attach runs against. */
export interface ExecTarget {
  id: string;
  bundle: string;
}

export interface ExecSyncResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** Runs a command to its end (ExecSync); at the timeout it and all it started are killed: DeadlineExceeded. */
export async function execSync(runtime: Pick<ContainerRuntime, 'exec'>, target: ExecTarget, command: string[], timeoutSeconds: number): Promise<ExecSyncResult> {
  const pidFile = execPidFile(target.bundle);
  try {
    const result = await runtime.exec(target.id, command, { timeoutMs: timeoutSeconds * 1000, maxOutput: EXEC_OUTPUT_LIMIT, pidFile });
    // containerd's answer too: DeadlineExceeded, which the kubelet reads as a timed-out probe.
    if (result.timedOut) throw deadlineExceeded(`command ${JSON.stringify(command)} timed out after ${timeoutSeconds}s and was killed with every process it started`);
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  } finally {
    await rm(pidFile, { force: true });
  }
}

export interface ExecStreamOptions {
  conmon: string;
  /** Where exec sessions under conmon keep their files. */
  sessionRoot: string;
  /** conmon's attach socket dir. */
  socketDir: string;
  /** The container's OCI process (a TTY exec starts from it). */
  processOf: () => Promise<Record<string, unknown> | undefined>;
}

/** A streaming exec (the Exec URL's session); resolves with the command's exit code. */
export async function execStream(runtime: ContainerRuntime, target: ExecTarget, request: ExecRequest, io: StreamIO, options: ExecStreamOptions): Promise<number> {
  if (!request.tty) {
    const pidFile = execPidFile(target.bundle);
    try {
      return await execWithPipes(runtime, target.id, request.cmd, io, pidFile);
    } finally {
      await rm(pidFile, { force: true });
    }
  }
  const process = await options.processOf();
  if (!process) throw internal(`container ${target.id} has no OCI process to exec from`);
  return execWithTerminal({ runtime, conmon: options.conmon, containerId: target.id, process, cmd: request.cmd, sessionRoot: options.sessionRoot, socketDir: options.socketDir }, io);
}

/** Attaches to a running container's stdio (through conmon) until it exits or the client leaves. */
export async function attach(socketDir: string, target: ExecTarget, _request: AttachRequest, io: StreamIO): Promise<void> {
  await attachToConmon(join(socketDir, target.id), bundlePaths(target.bundle).ctl, io);
}
