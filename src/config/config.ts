// berthd's configuration: defaults, the TOML file, command-line overrides, and checks
// that turn every unknown key or bad value into a start-up error naming the key.
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { BerthError, invalidArgument } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { parseReference } from '../util/image-reference.js';

export const DEFAULT_CONFIG_PATH = '/etc/berth/berth.toml';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const CGROUP_DRIVERS = ['cgroupfs', 'systemd'] as const;
export type CgroupDriver = (typeof CGROUP_DRIVERS)[number];

export interface RuntimeHandlerConfig {
  /** The OCI runtime binary (runc, crun, runsc…). */
  path: string;
  /** Extra global flags passed to the runtime before its command (e.g. runsc's ["--platform=ptrace"]). */
  options: string[];
}

export interface RegistryConfig {
  /** Endpoints tried in order before the registry itself, e.g. "http://127.0.0.1:5000". */
  mirrors: string[];
  /** Plain http allowed (and TLS certificates not checked) for this host. */
  insecure: boolean;
}

export interface BerthConfig {
  listen: string;
  root: string;
  state: string;
  log_level: LogLevel;
  cgroup_driver: CgroupDriver;
  default_runtime: string;
  /** Images the kubelet's image GC must never remove (reported pinned=true). */
  pinned_images: string[];
  /** A pull that receives no bytes for this long is cancelled (Go duration). */
  image_pull_progress_timeout: string;
  /** How long a container's writable-layer usage (stats, metrics) is answered before its upper dir is walked again (Go duration; containerd's key). */
  stats_collect_period: string;
  /** berth's RuntimeDefault seccomp profile for containers whose request names none (CRI-O's key); false: unconfined, as the CRI says. */
  seccomp_use_default_when_empty: boolean;
  /** Where CDI spec files are read from; a later directory wins for the same device. */
  cdi_spec_dirs: string[];
  runtimes: Record<string, RuntimeHandlerConfig>;
  cni: { conf_dir: string; bin_dirs: string[] };
  registries: Record<string, RegistryConfig>;
  stream: { address: string; port: number };
  /** The Prometheus endpoint, "HOST:PORT" serving /metrics; empty: off. */
  metrics: { address: string };
}

export function defaultConfig(): BerthConfig {
  return {
    listen: 'unix:///run/berth/berth.sock',
    root: '/var/lib/berth',
    state: '/run/berth',
    log_level: 'info',
    cgroup_driver: 'cgroupfs',
    default_runtime: 'runc',
    pinned_images: [],
    image_pull_progress_timeout: '5m',
    stats_collect_period: '10s',
    seccomp_use_default_when_empty: false,
    cdi_spec_dirs: ['/etc/cdi', '/var/run/cdi'],
    runtimes: {
      runc: { path: '/usr/sbin/runc', options: [] },
      crun: { path: '/usr/bin/crun', options: [] },
      runsc: { path: '/usr/bin/runsc', options: [] },
    },
    cni: { conf_dir: '/etc/cni/net.d', bin_dirs: ['/usr/lib/cni', '/opt/cni/bin'] },
    registries: {},
    stream: { address: '127.0.0.1', port: 0 },
    metrics: { address: '' },
  };
}

/** Command-line values that win over the file. */
export interface ConfigOverrides {
  listen?: string;
  root?: string;
  state?: string;
  log_level?: string;
}

export interface LoadConfigOptions {
  /** The file to read; when it is the default path and missing, defaults apply. */
  path?: string;
  overrides?: ConfigOverrides;
}

export function configError(message: string): BerthError {
  return invalidArgument(message);
}

/** Reads, checks and merges the configuration. Throws a BerthError naming the bad key. */
export function loadConfig(options: LoadConfigOptions = {}): BerthConfig {
  const path = options.path ?? DEFAULT_CONFIG_PATH;
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (!(missing && options.path === undefined)) {
      throw configError(`cannot read config ${path}: ${(err as Error).message}`);
    }
  }
  let raw: Record<string, unknown> = {};
  if (text !== undefined) {
    try {
      raw = parseToml(text) as Record<string, unknown>;
    } catch (err) {
      throw configError(`config ${path} is not valid TOML: ${(err as Error).message}`);
    }
  }
  const overrides = Object.fromEntries(Object.entries(options.overrides ?? {}).filter(([, v]) => v !== undefined));
  return parseConfig({ ...raw, ...overrides }, path);
}

/** Checks a parsed TOML document against the schema, filling defaults. */
export function parseConfig(raw: Record<string, unknown>, source = 'config'): BerthConfig {
  const config = defaultConfig();
  const where = new KeyReader(raw, source, '');
  config.listen = where.string('listen', config.listen, checkListen);
  config.root = where.string('root', config.root, checkAbsolute);
  config.state = where.string('state', config.state, checkAbsolute);
  config.log_level = where.oneOf('log_level', config.log_level, LOG_LEVELS);
  config.cgroup_driver = where.oneOf('cgroup_driver', config.cgroup_driver, CGROUP_DRIVERS);
  config.default_runtime = where.string('default_runtime', config.default_runtime);
  config.pinned_images = where.stringArray('pinned_images', config.pinned_images, checkReference);
  config.image_pull_progress_timeout = where.string('image_pull_progress_timeout', config.image_pull_progress_timeout, checkDuration);
  config.stats_collect_period = where.string('stats_collect_period', config.stats_collect_period, checkDuration);
  config.seccomp_use_default_when_empty = where.boolean('seccomp_use_default_when_empty', config.seccomp_use_default_when_empty);
  config.cdi_spec_dirs = where.stringArray('cdi_spec_dirs', config.cdi_spec_dirs, checkAbsolute);

  for (const [name, table] of where.tables('runtimes')) {
    const base = config.runtimes[name];
    config.runtimes[name] = {
      path: table.string('path', base?.path, checkAbsolute),
      options: table.stringArray('options', base?.options ?? []),
    };
    table.finish();
  }
  const cni = where.table('cni');
  config.cni.conf_dir = cni.string('conf_dir', config.cni.conf_dir, checkAbsolute);
  config.cni.bin_dirs = cni.stringArray('bin_dirs', config.cni.bin_dirs, checkAbsolute);
  cni.finish();
  for (const [host, table] of where.tables('registries')) {
    config.registries[host] = {
      mirrors: table.stringArray('mirrors', [], checkMirror),
      insecure: table.boolean('insecure', false),
    };
    table.finish();
  }
  const stream = where.table('stream');
  config.stream.address = stream.string('address', config.stream.address);
  config.stream.port = stream.integer('port', config.stream.port, 0, 65535);
  stream.finish();
  const metrics = where.table('metrics');
  config.metrics.address = metrics.string('address', config.metrics.address, checkMetricsAddress);
  metrics.finish();
  where.finish();

  if (!config.runtimes[config.default_runtime]) {
    throw configError(
      `${source}: default_runtime "${config.default_runtime}" is not a configured runtime (have: ${Object.keys(config.runtimes).join(', ')})`,
    );
  }
  return config;
}

/** The effective configuration as TOML, as `berthd config` prints it. */
export function configToToml(config: BerthConfig): string {
  return stringifyToml(config as unknown as Record<string, unknown>) + '\n';
}

/** The socket path of a unix:// endpoint. */
export function socketPathOf(listen: string): string {
  return listen.replace(/^unix:\/\//, '');
}

type Check<T> = (value: T) => string | undefined;

/** The host and port of a "HOST:PORT" address ("[::1]:1338" for IPv6); throws on anything else. */
export function parseHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) throw new Error('must be HOST:PORT with a port from 1 to 65535, like 127.0.0.1:1338 or [::1]:1338');
  return { host: match[1] ?? match[2]!, port };
}

const checkMetricsAddress: Check<string> = (v) => {
  if (v === '') return undefined;
  try {
    parseHostPort(v);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
};

const checkAbsolute: Check<string> = (v) => (isAbsolute(v) ? undefined : 'must be an absolute path');
const checkListen: Check<string> = (v) =>
  /^unix:\/\/\/./.test(v) ? undefined : 'must be a unix socket endpoint like unix:///run/berth/berth.sock';
const checkDuration: Check<string> = (v) => {
  try {
    return parseDuration(v) > 0 ? undefined : 'must be a positive duration';
  } catch {
    return 'must be a duration like 30s or 5m';
  }
};
const checkReference: Check<string> = (v) => {
  try {
    parseReference(v);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
};
const checkMirror: Check<string> = (v) => {
  try {
    const url = new URL(v);
    return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : 'must be an http:// or https:// URL';
  } catch {
    return 'must be a URL like http://127.0.0.1:5000';
  }
};

/** Reads the keys of one TOML table, remembering which were used so leftovers are errors. */
class KeyReader {
  readonly #seen = new Set<string>();

  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly source: string,
    private readonly prefix: string,
  ) {}

  #name(key: string): string {
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  #fail(key: string, problem: string): never {
    throw configError(`${this.source}: ${this.#name(key)} ${problem}`);
  }

  #take(key: string): unknown {
    this.#seen.add(key);
    return this.raw[key];
  }

  string(key: string, fallback: string | undefined, check?: Check<string>): string {
    const value = this.#take(key);
    if (value === undefined) {
      if (fallback === undefined) this.#fail(key, 'is required');
      return fallback;
    }
    if (typeof value !== 'string') this.#fail(key, `must be a string, not ${describe(value)}`);
    const problem = check?.(value);
    if (problem) this.#fail(key, `${problem} (got "${value}")`);
    return value;
  }

  stringArray(key: string, fallback: string[], check?: Check<string>): string[] {
    const value = this.#take(key);
    if (value === undefined) return fallback;
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      this.#fail(key, `must be a list of strings, not ${describe(value)}`);
    }
    for (const item of value as string[]) {
      const problem = check?.(item);
      if (problem) this.#fail(key, `${problem} (got "${item}")`);
    }
    return value as string[];
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.#take(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.#fail(key, `must be true or false, not ${describe(value)}`);
    return value;
  }

  integer(key: string, fallback: number, min: number, max: number): number {
    const value = this.#take(key);
    if (value === undefined) return fallback;
    const n = typeof value === 'bigint' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.#fail(key, `must be a whole number from ${min} to ${max}, not ${describe(value)}`);
    }
    return n;
  }

  oneOf<T extends string>(key: string, fallback: T, allowed: readonly T[]): T {
    const value = this.string(key, fallback);
    if (!allowed.includes(value as T)) this.#fail(key, `must be one of ${allowed.join(', ')} (got "${value}")`);
    return value as T;
  }

  table(key: string): KeyReader {
    const value = this.#take(key);
    if (value === undefined) return new KeyReader({}, this.source, this.#name(key));
    if (!isTable(value)) this.#fail(key, `must be a table ([${this.#name(key)}]), not ${describe(value)}`);
    return new KeyReader(value, this.source, this.#name(key));
  }

  /** The sub-tables of a table of tables such as [runtimes.NAME]. */
  tables(key: string): Array<[string, KeyReader]> {
    const outer = this.table(key);
    const entries: Array<[string, KeyReader]> = [];
    for (const name of Object.keys(outer.raw)) entries.push([name, outer.table(name)]);
    return entries;
  }

  /** Refuses keys nobody read: a typo must not silently fall back to a default. */
  finish(): void {
    for (const key of Object.keys(this.raw)) {
      if (!this.#seen.has(key)) throw configError(`${this.source}: unknown key "${this.#name(key)}"`);
    }
  }
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (isTable(value)) return 'a table';
  return `${typeof value} ${JSON.stringify(typeof value === 'bigint' ? String(value) : value)}`;
}
