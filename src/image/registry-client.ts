// A client of the OCI distribution API: endpoints from the config (mirrors in order,
// then the registry itself; plain http for insecure hosts, and http after https for
// loopback hosts as Docker does), bearer-token and basic auth, retries with back-off,
// redirects to blob storage (without our credentials when the origin changes), and a
// watchdog that cancels a transfer making no progress.
import { BerthError, unavailable, deadlineExceeded, failedPrecondition } from '../errors.js';
import type { RegistryConfig } from '../config/config.js';
import type { BlobSource, DirectRequest } from './content-store.js';
import { DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, MANIFEST_ACCEPT } from './media-types.js';
import { DEFAULT_DOMAIN, type ImageReference } from '../util/image-reference.js';
import { formatDuration } from '../util/duration.js';

/** Credentials for one pull, from the CRI AuthConfig. */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** A refresh token for the registry's token service. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

export interface RegistryEndpoint {
  /** e.g. "https://registry-1.docker.io" or "http://127.0.0.1:5000" */
  base: string;
  /** Another endpoint to try when this one cannot be reached (https → http on loopback). */
  fallback?: string;
  isMirror: boolean;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  endpoint: RegistryEndpoint;
}

export interface RegistryClientOptions {
  registries: Record<string, RegistryConfig>;
  /** A transfer that receives nothing for this long is cancelled. */
  progressTimeoutMs: number;
  /** Attempts per request on network errors, 5xx and 429. */
  attempts?: number;
}

const RETRY_BASE_MS = 250;
/**
 * How long a loopback registry found to speak plain http is asked over http first: each
 * request of a pull (manifest, config, every blob) would otherwise open a TLS connection
 * that fails before the one that works.
 */
const PLAIN_HTTP_MEMORY_MS = 5 * 60_000;

export class RegistryClient {
  readonly #tokens = new Map<string, { token: string; expires: number }>();
  /** Loopback registries (their https base) that answered over plain http, and until when that is believed. */
  readonly #plainHttp = new Map<string, number>();

  constructor(private readonly options: RegistryClientOptions) {}

  /** Mirrors first, then the registry itself. */
  endpoints(domain: string): RegistryEndpoint[] {
    const mirrors = this.options.registries[domain]?.mirrors ?? [];
    const list: RegistryEndpoint[] = mirrors.map((m) => ({ base: m.replace(/\/+$/, ''), isMirror: true }));
    const host = domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : domain;
    if (this.options.registries[domain]?.insecure) list.push({ base: `http://${host}`, isMirror: false });
    else if (isLoopbackHost(host)) list.push({ base: `https://${host}`, fallback: `http://${host}`, isMirror: false });
    else list.push({ base: `https://${host}`, isMirror: false });
    return list;
  }

  /** The manifest or index a reference names, from the first endpoint that has it. */
  async fetchManifest(ref: ImageReference, credentials: RegistryCredentials, signal?: AbortSignal): Promise<FetchedManifest> {
    const target = ref.digest ?? ref.tag ?? 'latest';
    return this.#firstEndpoint(ref.domain, async (endpoint) => {
      const { bytes, mediaType } = await this.#getManifest(endpoint, ref, target, credentials, signal);
      if (mediaType === DOCKER_SCHEMA1 || mediaType === DOCKER_SCHEMA1_SIGNED) {
        throw failedPrecondition(`${ref.domain}/${ref.path}:${target} is a Docker schema 1 manifest, which berth does not support (it is deprecated; push the image again with a current client)`);
      }
      return { bytes, mediaType, endpoint };
    });
  }

  /** A manifest or index by digest from a known endpoint (children of an index). */
  async fetchManifestByDigest(endpoint: RegistryEndpoint, ref: ImageReference, digest: string, credentials: RegistryCredentials, signal?: AbortSignal): Promise<Buffer> {
    return (await this.#getManifest(endpoint, ref, digest, credentials, signal)).bytes;
  }

  /** One manifest request, watched like a blob: a registry that stops answering is cancelled. */
  async #getManifest(endpoint: RegistryEndpoint, ref: ImageReference, target: string, credentials: RegistryCredentials, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string }> {
    const watchdog = new ProgressWatchdog(this.options.progressTimeoutMs, signal);
    try {
      const response = await this.#request(endpoint, ref.path, `/manifests/${target}`, credentials, { accept: MANIFEST_ACCEPT }, watchdog.signal);
      const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
      const chunks: Uint8Array[] = [];
      for await (const chunk of watchdog.watch(response)) chunks.push(chunk);
      return { bytes: Buffer.concat(chunks), mediaType };
    } finally {
      watchdog.stop();
    }
  }

  /**
   * A resumable source of one blob, for the content store; with the plain GET a layer
   * worker may make itself first (`direct`: the base this client would ask first, the
   * authorization it already holds; anything but a 200 sends it back here).
   */
  blobSource(endpoint: RegistryEndpoint, ref: ImageReference, digest: string, credentials: RegistryCredentials, signal?: AbortSignal): BlobSource {
    const direct = (): DirectRequest => {
      const plain = endpoint.fallback !== undefined && (this.#plainHttp.get(endpoint.base) ?? 0) > Date.now();
      const url = `${plain ? endpoint.fallback! : endpoint.base}/v2/${ref.path}/blobs/${digest}`;
      const authorization = credentials.registryToken ? `Bearer ${credentials.registryToken}` : this.#cachedToken(new URL(url).origin, `repository:${ref.path}:pull`);
      return {
        url,
        headers: authorization ? { authorization } : {},
        timeoutMs: this.options.progressTimeoutMs,
        timeoutMessage: progressTimeoutMessage(this.options.progressTimeoutMs),
        signal,
        abortError: () => abortReason(signal!),
      };
    };
    return Object.assign(this.#blobRequest(endpoint, ref, digest, credentials, signal), { direct });
  }

  #blobRequest(endpoint: RegistryEndpoint, ref: ImageReference, digest: string, credentials: RegistryCredentials, signal?: AbortSignal): BlobSource {
    return async (offset) => {
      const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
      const watchdog = new ProgressWatchdog(this.options.progressTimeoutMs, signal);
      let response: Response;
      try {
        response = await this.#request(endpoint, ref.path, `/blobs/${digest}`, credentials, headers, watchdog.signal).catch((err: unknown) => {
          // A partial download that already holds every byte (the pull died before it was
          // committed) asks for a range past the end: start over; the digest decides.
          if (offset > 0 && err instanceof BerthError && err.code === 'OutOfRange') {
            return this.#request(endpoint, ref.path, `/blobs/${digest}`, credentials, {}, watchdog.signal);
          }
          throw err;
        });
      } catch (err) {
        watchdog.stop();
        throw err;
      }
      const resumed = offset > 0 && response.status === 206;
      return { body: watchdog.watch(response), resumed };
    };
  }

  async #firstEndpoint<T>(domain: string, attempt: (endpoint: RegistryEndpoint) => Promise<T>): Promise<T> {
    const failures: BerthError[] = [];
    for (const endpoint of this.endpoints(domain)) {
      try {
        return await attempt(endpoint);
      } catch (err) {
        const error = err instanceof BerthError ? err : unavailable((err as Error).message);
        // A refusal from the registry itself is the answer; mirrors may just lack the image.
        if (!endpoint.isMirror || error.code === 'FailedPrecondition') throw withTried(error, failures);
        failures.push(new BerthError(error.code, `mirror ${endpoint.base}: ${error.message}`));
      }
    }
    throw unavailable(`no endpoint for ${domain} is configured`);
  }

  /** One API request with auth, retries, https→http fallback and manual redirects. */
  async #request(
    endpoint: RegistryEndpoint,
    repository: string,
    suffix: string,
    credentials: RegistryCredentials,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Response> {
    const attempts = this.options.attempts ?? 4;
    let remembered = endpoint.fallback !== undefined && (this.#plainHttp.get(endpoint.base) ?? 0) > Date.now();
    let base = remembered ? endpoint.fallback! : endpoint.base;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      signal?.throwIfAborted();
      try {
        const url = `${base}/v2/${repository}${suffix}`;
        const response = await this.#authorizedFetch(url, repository, credentials, headers, signal);
        if (endpoint.fallback && base === endpoint.fallback) this.#plainHttp.set(endpoint.base, Date.now() + PLAIN_HTTP_MEMORY_MS);
        if (response.status === 429 || response.status >= 500) {
          await response.body?.cancel();
          lastError = unavailable(`${url}: registry answered ${response.status} ${response.statusText}`);
        } else {
          return await checkStatus(response, url);
        }
      } catch (err) {
        if (err instanceof BerthError) throw err;
        if (signal?.aborted) throw abortReason(signal);
        if (endpoint.fallback && base !== endpoint.fallback) {
          // A loopback registry that does not speak TLS: try plain http, as Docker does.
          base = endpoint.fallback;
          attempt--;
          continue;
        }
        if (remembered) {
          // It spoke plain http before; it may speak TLS now.
          this.#plainHttp.delete(endpoint.base);
          remembered = false;
          base = endpoint.base;
          attempt--;
          continue;
        }
        lastError = unavailable(`cannot reach ${base}: ${describeFetchError(err)}`);
      }
      if (attempt < attempts) await delay(RETRY_BASE_MS * 2 ** (attempt - 1), signal);
    }
    throw lastError instanceof BerthError ? lastError : unavailable(String(lastError));
  }

  async #authorizedFetch(url: string, repository: string, credentials: RegistryCredentials, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    const scope = `repository:${repository}:pull`;
    const origin = new URL(url).origin;
    let authorization = credentials.registryToken ? `Bearer ${credentials.registryToken}` : this.#cachedToken(origin, scope);
    let response = await fetchFollowingRedirects(url, { ...headers, ...(authorization ? { authorization } : {}) }, signal);
    if (response.status !== 401) return response;
    const challenge = parseChallenge(response.headers.get('www-authenticate') ?? '');
    await response.body?.cancel();
    if (!challenge) return response;
    if (challenge.scheme === 'basic') {
      const basic = basicAuth(credentials);
      if (!basic) return response;
      authorization = basic;
    } else {
      authorization = `Bearer ${await this.#fetchToken(origin, challenge.params, scope, credentials, signal)}`;
    }
    response = await fetchFollowingRedirects(url, { ...headers, authorization }, signal);
    return response;
  }

  #cachedToken(origin: string, scope: string): string | undefined {
    const cached = this.#tokens.get(`${origin} ${scope}`);
    return cached && cached.expires > Date.now() ? `Bearer ${cached.token}` : undefined;
  }

  async #fetchToken(origin: string, params: Record<string, string>, scope: string, credentials: RegistryCredentials, signal?: AbortSignal): Promise<string> {
    const realm = params.realm;
    if (!realm) throw new BerthError('Unauthenticated', `${origin} asked for a bearer token but named no realm`);
    const tokenScope = params.scope ?? scope;
    let response: Response;
    if (credentials.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.identityToken, client_id: 'berth', scope: tokenScope });
      if (params.service) form.set('service', params.service);
      response = await fetch(realm, { method: 'POST', body: form, signal });
    } else {
      const url = new URL(realm);
      if (params.service) url.searchParams.set('service', params.service);
      url.searchParams.set('scope', tokenScope);
      const basic = basicAuth(credentials);
      response = await fetch(url, { headers: basic ? { authorization: basic } : {}, signal });
    }
    if (response.status === 401 || response.status === 403) {
      throw new BerthError('Unauthenticated', `registry token service ${realm} refused the credentials (${response.status})`);
    }
    if (!response.ok) throw unavailable(`registry token service ${realm} answered ${response.status}`);
    const body = (await response.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new BerthError('Unauthenticated', `registry token service ${realm} returned no token`);
    this.#tokens.set(`${origin} ${scope}`, { token, expires: Date.now() + Math.max(60, (body.expires_in ?? 60) - 10) * 1000 });
    return token;
  }
}

async function checkStatus(response: Response, url: string): Promise<Response> {
  if (response.ok) return response;
  const detail = await errorDetail(response);
  switch (response.status) {
    case 401:
      throw new BerthError('Unauthenticated', `pull access denied: ${url}: authorization failed (401 Unauthorized)${detail}; check the credentials`);
    case 403:
      throw new BerthError('PermissionDenied', `pull access denied: ${url}: 403 Forbidden${detail}`);
    case 404:
      throw new BerthError('NotFound', `${url}: not found${detail}`);
    case 416:
      throw new BerthError('OutOfRange', `${url}: the requested range is beyond the blob (416)${detail}`);
    default:
      throw unavailable(`${url}: registry answered ${response.status} ${response.statusText}${detail}`);
  }
}

/** The registry's own error codes and messages ({"errors":[{code,message}]}). */
async function errorDetail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { errors?: Array<{ code?: string; message?: string }> };
    const parts = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': '));
    return parts.length > 0 ? ` (${parts.join('; ')})` : '';
  } catch {
    return '';
  }
}

const MAX_REDIRECTS = 5;

/** fetch with redirects followed by hand, dropping Authorization when the origin changes. */
async function fetchFollowingRedirects(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  let current = url;
  let currentHeaders = headers;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const response = await fetch(current, { headers: currentHeaders, redirect: 'manual', signal });
    const location = response.headers.get('location');
    if (![301, 302, 303, 307, 308].includes(response.status) || !location) return response;
    await response.body?.cancel();
    const next = new URL(location, current);
    if (next.origin !== new URL(current).origin) {
      const { authorization: _dropped, ...rest } = currentHeaders;
      currentHeaders = rest;
    }
    current = next.toString();
  }
  throw unavailable(`${url}: too many redirects`);
}

interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  for (const m of match[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[m[1]!.toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme, params };
}

function basicAuth(credentials: RegistryCredentials): string | undefined {
  if (credentials.username === undefined || credentials.username === '') return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
}

export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

function withTried(error: BerthError, mirrorFailures: BerthError[]): BerthError {
  if (mirrorFailures.length === 0) return error;
  return new BerthError(error.code, `${error.message} (after ${mirrorFailures.map((f) => f.message).join('; ')})`);
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

function abortReason(signal: AbortSignal): BerthError {
  const reason = signal.reason as unknown;
  return reason instanceof BerthError ? reason : new BerthError('Cancelled', reason instanceof Error ? reason.message : 'pull cancelled');
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    }, { once: true });
  });
}

function progressTimeoutMessage(timeoutMs: number): string {
  return `pull made no progress for ${formatDuration(timeoutMs)}; cancelled (image_pull_progress_timeout)`;
}

/**
 * Cancels a transfer that receives no bytes for `timeoutMs` (containerd's
 * image_pull_progress_timeout): a stalled registry fails the pull with a clear error
 * instead of hanging it forever.
 */
class ProgressWatchdog {
  readonly #controller = new AbortController();
  readonly signal: AbortSignal;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly timeoutMs: number, parent?: AbortSignal) {
    this.signal = parent ? AbortSignal.any([parent, this.#controller.signal]) : this.#controller.signal;
    this.#arm();
  }

  /** (Re)starts the countdown: once per received chunk, so the timer is refreshed, not replaced. */
  #arm(): void {
    if (this.#timer) {
      this.#timer.refresh();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#controller.abort(deadlineExceeded(progressTimeoutMessage(this.timeoutMs)));
    }, this.timeoutMs);
    this.#timer.unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * The response's body, chunk by chunk. It takes the Response, not its body: undici
   * cancels the body of a Response that is garbage collected, which would end a slowly
   * read download early without an error.
   */
  async *watch(response: Response): AsyncIterable<Uint8Array> {
    if (!response.body) return;
    try {
      for await (const chunk of response.body) {
        this.#arm();
        yield chunk;
      }
    } catch (err) {
      if (this.signal.aborted) throw abortReason(this.signal);
      throw unavailable(`blob download interrupted: ${describeFetchError(err)}`);
    } finally {
      this.stop();
    }
  }
}
