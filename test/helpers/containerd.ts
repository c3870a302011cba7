// Debian's containerd as the interop oracle: its CRI plugin on a temporary root, state
// and socket, sharing nothing with the host's defaults.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run, stopProcess, waitForSocket } from './processes.js';
import { tempDir } from './tmp.js';
import { cleanup } from './scope.js';
import { buildLayer, pushImage } from './image-builder.js';
import type { TestRegistry } from './registry.js';

export const CONTAINERD = '/usr/bin/containerd';

/** containerd's CRI needs a pause image: Debian's static catatonit, pushed to the test registry. Its reference. */
export async function pushPauseImage(registry: TestRegistry): Promise<string> {
  const pause = buildLayer([{ type: 'file', path: 'catatonit', content: readFileSync('/usr/bin/catatonit'), mode: 0o755 }]);
  await pushImage(registry, 'berth/pause', 'test', { layers: [pause], config: { Entrypoint: ['/catatonit', '-P'] } });
  return `${registry.host}/berth/pause:test`;
}

/** The CRI plugin's config for a test: the sandbox image, and the test registry as its own (plain http) mirror. */
export function registryCriToml(registry: TestRegistry, sandboxImage: string): string {
  return `sandbox_image = "${sandboxImage}"\n  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${registry.host}"]\n    endpoint = ["${registry.url}"]`;
}

export interface TestContainerd {
  dir: string;
  socket: string;
  endpoint: string;
  process: ChildProcess;
  logs(): string;
}

export interface ContainerdOptions {
  /** Extra TOML inside [plugins."io.containerd.grpc.v1.cri"]. */
  criToml?: string;
  cniConfDir?: string;
  /**
   * Another containerd daemon (the benches' containerd 2.x from scripts/build-containerd2.sh);
   * default Debian's. Its directory comes first in PATH, so its own shim is the one used.
   */
  binary?: string;
}

/** containerd's own version string, e.g. "1.6.20~ds1", from `containerd --version`. */
export async function containerdVersion(): Promise<string> {
  const { stdout } = await run(CONTAINERD, ['--version']);
  const version = stdout.trim().split(/\s+/)[2];
  if (!version) throw new Error(`cannot read containerd's version from: ${stdout}`);
  return version;
}

export async function startContainerd(t: { after(fn: () => unknown): void }, options: ContainerdOptions = {}): Promise<TestContainerd> {
  const dir = await tempDir(t, 'containerd-');
  const socket = join(dir, 'containerd.sock');
  const cniConfDir = options.cniConfDir ?? join(dir, 'net.d');
  await mkdir(cniConfDir, { recursive: true });
  const config = `
version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${join(dir, 'containerd-ttrpc.sock')}"
[debug]
  address = "${join(dir, 'containerd-debug.sock')}"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'opt')}"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  ${options.criToml ?? ''}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConfDir}"
`;
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, config);
  const binary = options.binary ?? CONTAINERD;
  const env = options.binary ? { ...process.env, PATH: `${dirname(options.binary)}:${process.env.PATH ?? ''}` } : process.env;
  const child = spawn(binary, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let logs = '';
  child.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  cleanup(t).after(() => stopProcess(child));
  await waitForSocket(socket, 30_000, () => child.exitCode === null).catch((err: Error) => {
    throw new Error(`${err.message}\ncontainerd output:\n${logs.slice(-4000)}`);
  });
  return { dir, socket, endpoint: `unix://${socket}`, process: child, logs: () => logs };
}
