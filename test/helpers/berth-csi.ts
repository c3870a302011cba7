// A real berth-csi for a test: its own socket and state dir in a temp dir. Cleanup stops
// it, then unmounts what is left below the temp dir and detaches every loop device of its
// state dir, so a failing test leaks nothing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Identity, Node } from '../../src/gen/csi/v1/csi_pb.js';
import { openChannel, serviceClient, type ServiceClient, type MethodsOf } from '../../src/server/grpc-client.js';
import { BERTH_CSI } from './paths.js';
import { stopProcess, waitForSocket } from './processes.js';
import { cleanup } from './scope.js';
import { tempDir, unmountBelow } from './tmp.js';

export interface TestBerthCsi {
  dir: string;
  stateDir: string;
  socket: string;
  endpoint: string;
  nodeId: string;
  process: ChildProcess;
  logs(): string;
  stop(): Promise<unknown>;
  identity: ServiceClient<MethodsOf<typeof Identity>>;
  controller: ServiceClient<MethodsOf<typeof Controller>>;
  node: ServiceClient<MethodsOf<typeof Node>>;
}

/** Loop devices whose backing file is under dir (from losetup --list). */
export function loopDevicesUnder(dir: string): string[] {
  const out = spawnSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' }).stdout ?? '';
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([name, file]) => name && file?.startsWith(`${dir}/`))
    .map(([name]) => name!);
}

/** Starts berth-csi in a new temp dir, or again on the dir of an earlier one (a restart). */
export async function startBerthCsi(t: { after(fn: () => unknown): void }, nodeId = 'test-node', reuseDir?: string): Promise<TestBerthCsi> {
  const dir = reuseDir ?? (await tempDir(t, 'berth-csi-test-'));
  const stateDir = join(dir, 'state');
  const socket = join(dir, 'csi.sock');
  if (!reuseDir) {
    cleanup(t).after(async () => {
      await unmountBelow(dir);
      for (const device of loopDevicesUnder(dir)) spawnSync('losetup', ['--detach', device]);
    });
  }
  const child = spawn(BERTH_CSI, ['--endpoint', `unix://${socket}`, '--nodeid', nodeId, '--state-dir', stateDir, '--log-level', 'debug'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  const channel = openChannel(`unix://${socket}`);
  cleanup(t).after(async () => {
    channel.close();
    await stopProcess(child);
  });
  await waitForSocket(socket, 15_000, () => child.exitCode === null).catch((err: Error) => {
    throw new Error(`${err.message}\nberth-csi output:\n${logs}`);
  });
  const identity = serviceClient(Identity, channel);
  // The socket is bound before the state dir is loaded: serving starts when Probe answers.
  for (let i = 0; ; i++) {
    const ready = await identity.probe({}, { timeoutMs: 2000 }).then(
      (r) => r.ready === true,
      () => false,
    );
    if (ready) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`berth-csi did not become ready\n${logs}`);
    await sleep(100);
  }
  return {
    dir,
    stateDir,
    socket,
    endpoint: `unix://${socket}`,
    nodeId,
    process: child,
    logs: () => logs,
    stop: async () => {
      channel.close();
      return stopProcess(child);
    },
    identity,
    controller: serviceClient(Controller, channel),
    node: serviceClient(Node, channel),
  };
}
