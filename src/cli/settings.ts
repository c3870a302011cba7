// Where berthctl connects, with crictl's precedence: a flag (or its environment
// variable) wins, then the config file (/etc/crictl.yaml by default, CRI_CONFIG_FILE or
// --config), then the default berth socket.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../util/duration.js';

export const DEFAULT_RUNTIME_ENDPOINT = 'unix:///run/berth/berth.sock';
export const DEFAULT_CRICTL_CONFIG = '/etc/crictl.yaml';
const DEFAULT_TIMEOUT_MS = 2000;

export interface GlobalFlags {
  runtimeEndpoint?: string;
  imageEndpoint?: string;
  timeout?: string;
  config?: string;
  debug?: boolean;
  /** crictl's --max-retries. */
  maxRetries?: number;
}

export interface ClientSettings {
  runtimeEndpoint: string;
  imageEndpoint: string;
  timeoutMs: number;
  debug: boolean;
  /** crictl.yaml's pull-image-on-create and disable-pull-on-run (create and run pull the image first). */
  pullImageOnCreate: boolean;
  disablePullOnRun: boolean;
  /**
   * crictl's max-retries: connecting to an endpoint that was set (flag, environment or
   * config file) is tried again this many times, with a back-off from 500 ms doubling
   * to 5 s (0: never, negative: forever). As crictl: the flag, else the config file's
   * key (0 when the file lacks it), else 3 when there is no config file.
   */
  maxRetries: number;
  /** The runtime endpoint came from a flag, the environment or the config file, not the default. */
  endpointSet: boolean;
}

interface CrictlYaml {
  'runtime-endpoint'?: string;
  'image-endpoint'?: string;
  timeout?: number | string;
  debug?: boolean;
  'pull-image-on-create'?: boolean;
  'disable-pull-on-run'?: boolean;
  'max-retries'?: number | string;
}

export function resolveSettings(flags: GlobalFlags, env: NodeJS.ProcessEnv = process.env): ClientSettings {
  const configPath = flags.config ?? env.CRI_CONFIG_FILE ?? DEFAULT_CRICTL_CONFIG;
  const found = readConfigFile(configPath, flags.config !== undefined || env.CRI_CONFIG_FILE !== undefined);
  const file = found ?? {};
  const chosenEndpoint = flags.runtimeEndpoint ?? env.CONTAINER_RUNTIME_ENDPOINT ?? file['runtime-endpoint'];
  const runtimeEndpoint = normaliseEndpoint(chosenEndpoint ?? DEFAULT_RUNTIME_ENDPOINT);
  const fileRetries = Number(file['max-retries'] ?? 0);
  const maxRetries = flags.maxRetries ?? (found ? (Number.isInteger(fileRetries) ? fileRetries : 0) : 3);
  const imageEndpoint = normaliseEndpoint(flags.imageEndpoint ?? env.IMAGE_SERVICE_ENDPOINT ?? file['image-endpoint'] ?? runtimeEndpoint);
  const timeoutText = flags.timeout ?? (file.timeout !== undefined ? String(file.timeout) : undefined);
  const timeoutMs = timeoutText === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(timeoutText);
  return { runtimeEndpoint, imageEndpoint, timeoutMs: timeoutMs > 0 ? timeoutMs : DEFAULT_TIMEOUT_MS, debug: flags.debug ?? file.debug ?? false,
    pullImageOnCreate: file['pull-image-on-create'] === true,
    disablePullOnRun: file['disable-pull-on-run'] === true,
    maxRetries,
    endpointSet: chosenEndpoint !== undefined && chosenEndpoint !== '',
  };
}

/** The config file's settings; undefined when the default file does not exist. */
function readConfigFile(path: string, explicit: boolean): CrictlYaml | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  const doc = parseYaml(text) as unknown;
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`config file ${path} must be a YAML mapping`);
  return doc as CrictlYaml;
}

/** crictl accepts a bare socket path as well as unix://PATH. */
export function normaliseEndpoint(endpoint: string): string {
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  if (!endpoint.startsWith('unix://')) {
    throw new Error(`endpoint "${endpoint}" is not supported: use unix:///path/to/socket`);
  }
  return endpoint;
}
