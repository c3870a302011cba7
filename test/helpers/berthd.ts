// A real berthd for a test: its own socket, root, state and config in a temp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BERTHCTL, BERTHD } from './paths.js';
import { run, stopProcess, waitForSocket, type RunResult } from './processes.js';
import { tempDir } from './tmp.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeService } from '../../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../../src/server/grpc-client.js';
import { cleanup } from './scope.js';

export interface TestBerthd {
  dir: string;
  socket: string;
  endpoint: string;
  configPath: string;
  process: ChildProcess;
  /** Everything berthd logged so far. */
  logs(): string;
  /** berthctl against this berthd. */
  ctl(args: string[], options?: { env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface BerthdOptions {
  /** Extra TOML appended to the test config. */
  extraToml?: string;
  /** berthd's log level (debug by default, so a failing test shows what happened). */
  logLevel?: string;
  /** A CNI config dir; by default an empty one of the test's own. */
  cniConfDir?: string;
  /** A command berthd is started through (e.g. nsenter into a test systemd's namespaces). */
  prefix?: string[];
  /** Another build's berthd.js (benches compare two builds side by side); default this build's. */
  binary?: string;
}

export async function startBerthd(t: { after(fn: () => unknown): void }, options: BerthdOptions = {}): Promise<TestBerthd> {
  const dir = await tempDir(t, 'berthd-');
  // Searchable by others, as /run is: a container in a pod's user namespace is set up by
  // its root, unprivileged on the host, which must pass the dirs above berthd's state.
  await chmod(dir, 0o711);
  const socket = join(dir, 'berth.sock');
  const cniConfDir = options.cniConfDir ?? join(dir, 'net.d');
  await mkdir(cniConfDir, { recursive: true });
  const configPath = join(dir, 'berth.toml');
  await writeFile(
    configPath,
    [
      `listen = "unix://${socket}"`,
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      `log_level = "${options.logLevel ?? 'debug'}"`,
      // Before any table of ours, so its top-level keys stay top-level.
      options.extraToml ?? '',
      `[cni]`,
      `conf_dir = "${cniConfDir}"`,
    ].join('\n'),
  );
  return launchBerthd(t, dir, configPath, socket, options.binary, options.prefix);
}

/** Stops and removes every pod (and so every container) of a CRI runtime (berthd, containerd). */
export async function removeAllPods(endpoint: string): Promise<void> {
  const channel = openChannel(endpoint);
  try {
    const runtime = serviceClient(RuntimeService, channel);
    for (const pod of (await runtime.listPodSandbox({}, { timeoutMs: 10_000 })).items) {
      await runtime.removePodSandbox({ podSandboxId: pod.id }, { timeoutMs: 60_000 }).catch(() => undefined);
    }
  } finally {
    channel.close();
  }
}

/** Runs berthd on an existing config (e.g. to restart it on the same state). */
export async function launchBerthd(
  t: { after(fn: () => unknown): void },
  dir: string,
  configPath: string,
  socket: string,
  binary: string = BERTHD,
  prefix: string[] = [],
): Promise<TestBerthd> {
  // Run as a user runs it, through its #! line (which carries berthd's node flags).
  const command = [...prefix, binary, '--config', configPath];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  const endpoint = `unix://${socket}`;
  // Pods first, while berthd still runs: their containers and PID namespace inits are
  // processes of their own that would outlive the test otherwise.
  cleanup(t).after(async () => {
    if (child.exitCode === null && child.signalCode === null) await removeAllPods(endpoint).catch(() => undefined);
    await stopProcess(child);
  });
  await waitForSocket(socket, 15_000, () => child.exitCode === null).catch((err: Error) => {
    throw new Error(`${err.message}\nberthd output:\n${logs}`);
  });
  await waitUntilServing(endpoint, () => logs);
  return {
    dir,
    socket,
    endpoint,
    configPath,
    process: child,
    logs: () => logs,
    ctl: (args, opts = {}) => runBerthctl(['-r', endpoint, ...args], opts),
    stop: (signal = 'SIGTERM') => stopProcess(child, signal),
  };
}

export function runBerthctl(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  // A test must never pick up the machine's /etc/crictl.yaml or endpoint variables.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, CRI_CONFIG_FILE: '/dev/null', ...options.env };
  return run(process.execPath, [BERTHCTL, ...args], { env, input: options.input });
}

/** Waits until berthd has finished start-up recovery (its RPCs stop answering UNAVAILABLE). */
async function waitUntilServing(endpoint: string, logs: () => string): Promise<void> {
  const channel = openChannel(endpoint);
  const runtime = serviceClient(RuntimeService, channel);
  try {
    for (let i = 0; i < 300; i++) {
      try {
        await runtime.version({}, { timeoutMs: 2000 });
        return;
      } catch {
        await sleep(50);
      }
    }
    throw new Error(`berthd did not finish starting:\n${logs().slice(-3000)}`);
  } finally {
    channel.close();
  }
}
