// Debian's docker-registry (distribution 2.8) on 127.0.0.1 for a test: its own port,
// config and storage in a temp dir, optionally behind htpasswd basic auth.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { stopProcess } from './processes.js';
import { tempDir } from './tmp.js';
import { cleanup } from './scope.js';

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

export interface TestRegistry {
  host: string; // "127.0.0.1:PORT"
  url: string; // "http://127.0.0.1:PORT"
  dir: string;
  /** The credentials the registry requires, when started with htpasswd. */
  auth?: { user: string; password: string };
  /** Everything the registry logged so far (across restarts, the last 256 KiB). */
  logs(): string;
  /** Stops it hard (SIGKILL), e.g. in the middle of a pull. */
  kill(): Promise<void>;
  /** Sends a signal, e.g. SIGSTOP to make it hang mid-transfer (SIGCONT to resume). */
  signal(signal: NodeJS.Signals): void;
  /** Starts it again on the same port and storage (stopping it first if it runs). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Require HTTP basic auth with this one user (distribution's htpasswd auth). */
  htpasswd?: { user: string; password: string };
  /** Log every request (to count fetches of a blob). */
  accessLog?: boolean;
  /** Require bearer tokens from this token service (distribution's token auth). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

const LOG_LIMIT = 256 * 1024;

export async function startRegistry(t: { after(fn: () => unknown): void }, options: RegistryOptions = {}): Promise<TestRegistry> {
  let child: ChildProcess | undefined;
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    if (!child) return;
    child.kill('SIGCONT'); // a registry a test froze with SIGSTOP must be able to stop
    await stopProcess(child, signal);
  };
  // Registered before the temp dir so that the registry (whichever process restart
  // left running) is stopped before its storage is removed.
  cleanup(t).after(() => halt('SIGTERM'));
  const dir = await tempDir(t, 'registry-');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const storage = join(dir, 'data');
  await mkdir(storage);

  let authYaml = '';
  if (options.htpasswd) {
    const { user, password } = options.htpasswd;
    if (!user || user.includes(':') || /\s/.test(user)) throw new Error(`htpasswd user ${JSON.stringify(user)} cannot be written to an htpasswd file`);
    // distribution only reads bcrypt entries. Cost 4 (bcrypt's minimum) because the
    // registry checks the password on every request, and cost 10 costs ~60 ms each.
    const htpasswdPath = join(dir, 'htpasswd');
    await writeFile(htpasswdPath, `${user}:${bcrypt.hashSync(password, 4)}\n`, { mode: 0o600 });
    // distribution 2.8 serves htpasswd auth over plain http (it does not insist on
    // TLS), which is what lets tests check credentials on loopback.
    authYaml = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${htpasswdPath}\n`;
  }

  if (options.token) {
    const { realm, service, issuer, rootCertBundle } = options.token;
    authYaml = `auth:\n  token:\n    realm: ${realm}\n    service: ${service}\n    issuer: ${issuer}\n    rootcertbundle: ${rootCertBundle}\n`;
  }

  // A fixed http.secret keeps upload URLs (their signed _state) valid across kill and
  // restart; without one the registry makes a random secret on each start.
  const config = `version: 0.1
log:
  level: info
  accesslog:
    disabled: ${options.accessLog ? 'false' : 'true'}
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${host}
  secret: ${randomBytes(16).toString('hex')}
${authYaml}`;
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, config);

  let logs = '';
  const launch = async (): Promise<void> => {
    // A clean environment: REGISTRY_* variables would override the config file.
    const proc = spawn(DOCKER_REGISTRY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
    child = proc;
    const append = (d: Buffer) => {
      logs += d.toString();
      if (logs.length > LOG_LIMIT) logs = logs.slice(-LOG_LIMIT);
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    await waitForRegistry(url, 15_000, () => proc.exitCode === null && proc.signalCode === null).catch((err: Error) => {
      throw new Error(`${err.message}\ndocker-registry output:\n${logs.slice(-4000)}`);
    });
  };
  await launch();

  return {
    host,
    url,
    dir,
    auth: options.htpasswd,
    logs: () => logs,
    kill: () => halt('SIGKILL'),
    signal: (signal) => {
      child?.kill(signal);
    },
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    stop: () => halt('SIGTERM'),
  };
}

/** A port nothing listens on right now: bind port 0, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port from the kernel'))));
    });
  });
}

/** Resolves once GET /v2/ answers at all: 200, or 401 when auth is on. */
async function waitForRegistry(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!alive()) throw new Error(`docker-registry for ${url} exited before serving`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new Error(`docker-registry did not answer GET ${url}/v2/ within ${timeoutMs} ms`);
}
