// Running a host tool (mount, unshare, ip, iptables…) with its failure turned into a
// BerthError that says what berth was doing and what the tool said.
import { spawn } from 'node:child_process';
import { internal } from '../errors.js';
import { helperOperationsAvailable, HelperSpawnError, runViaHelper } from './spawn-helper.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export function runCommand(command: string, args: string[], doing: string, options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  // Through the warm spawning helper (no fork of berthd, no blocked event loop) where it runs.
  return throughHelper([command, ...args], false, doing, options) ?? spawnCommand(command, args, doing, options);
}

/**
 * One of the spawning helper's own operations (a forked child making the syscalls, no
 * exec; see HelperRequest.builtin), failing as runCommand does; `undefined` where the
 * helper cannot make them (helperOperationsAvailable): the caller runs the host tool.
 */
export function runHelperOperation(argv: string[], doing: string, options: { timeoutMs?: number; newSession?: boolean } = {}): Promise<CommandResult> | undefined {
  if (!helperOperationsAvailable()) return undefined;
  return throughHelper(argv, true, doing, options);
}

function throughHelper(argv: string[], builtin: boolean, doing: string, options: { input?: string; timeoutMs?: number; newSession?: boolean }): Promise<CommandResult> | undefined {
  const command = argv[0]!;
  let pid: number | undefined;
  let killed = false;
  const viaHelper = runViaHelper({ argv, builtin, newSession: options.newSession, stdin: options.input ?? '', onPid: (p) => (pid = p) });
  if (viaHelper) {
    const timer = options.timeoutMs
      ? setTimeout(() => {
          killed = true;
          if (pid) killQuietly(pid);
        }, options.timeoutMs)
      : undefined;
    return viaHelper.then(
      ({ code, signal, stdout, stderr }) => {
        clearTimeout(timer);
        if (code === 0) return { stdout, stderr };
        throw internal(`${doing}: ${command} ${signal ? `was killed (${signal})` : `failed`}: ${stderr.trim() || stdout.trim() || `exit ${code}`}`);
      },
      (err: Error) => {
        clearTimeout(timer);
        if (err instanceof HelperSpawnError) throw internal(`${doing}: cannot run ${command}: ${err.message}`);
        throw internal(`${doing}: ${command}: ${err.message}${killed ? ' (after its timeout)' : ''}`);
      },
    );
  }
  return undefined;
}

function spawnCommand(command: string, args: string[], doing: string, options: { input?: string; timeoutMs?: number }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(internal(`${doing}: cannot run ${command}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(internal(`${doing}: ${command} ${signal ? `was killed (${signal})` : `failed`}: ${stderr.trim() || stdout.trim() || `exit ${code}`}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** SIGKILL to a pid (a negative one: its process group); gone already is fine. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
