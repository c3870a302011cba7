// Running programs from tests: collect output, wait for exit, wait for a socket to serve.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { isListening } from '../../src/server/unix-socket-path.js';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], options: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A program that exits without reading its input must not crash the test with EPIPE.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input ?? '');
  });
}

/** Resolves once something accepts connections on the unix socket. */
export async function waitForSocket(path: string, timeoutMs: number, alive?: () => boolean): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (alive && !alive()) throw new Error(`process serving ${path} exited before listening`);
    if (await isListening(path)) return;
    await sleep(50);
  }
  throw new Error(`nothing listened on ${path} within ${timeoutMs} ms`);
}


/** Waits for a child to exit; kills it with SIGKILL when it takes longer than the grace. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}
