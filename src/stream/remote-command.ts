// The remote-command protocol (exec and attach) of k8s.io/kubelet/pkg/cri/streaming:
// which streams a client opens, what the error stream carries per protocol version,
// and how resizes arrive. Transport-specific code (SPDY here, WebSocket in
// websocket-channels.ts) turns a connection into a RemoteCommandChannels.
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { ExitCodeError, type StreamIO, type TerminalSize } from './backends.js';
import type { SpdySession, SpdyStream } from './spdy.js';

/** SPDY remote-command protocols, most preferred first. */
export const SPDY_REMOTE_COMMAND_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

export interface StreamOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/**
 * Picks the first protocol of the client's list that the server speaks (the client's
 * order, as apimachinery's httpstream.Handshake does). The header may repeat and hold
 * comma-separated values. undefined: no common protocol; '': the client named none.
 */
export function negotiateProtocol(header: string | string[] | undefined, supported: string[]): string | undefined {
  const offered = (Array.isArray(header) ? header : header ? [header] : []).flatMap((h) => h.split(',')).map((p) => p.trim()).filter(Boolean);
  if (offered.length === 0) return '';
  return offered.find((p) => supported.includes(p));
}

export function offeredProtocols(header: string | string[] | undefined): string[] {
  return (Array.isArray(header) ? header : header ? [header] : []).flatMap((h) => h.split(',')).map((p) => p.trim()).filter(Boolean);
}

/** metav1.Status as the v4 (and v5) error stream carries it. */
export function statusFor(error: Error | undefined): Record<string, unknown> {
  if (!error) return { metadata: {}, status: 'Success' };
  if (error instanceof ExitCodeError) {
    return {
      metadata: {},
      status: 'Failure',
      message: error.message,
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: String(error.exitCode) }] },
    };
  }
  return { metadata: {}, status: 'Failure', message: error.message, reason: 'InternalError', code: 500 };
}

/** What the error stream carries at the end, per protocol version. */
/** Runs a session's command; what the error stream reports: a non-zero exit code or the error, if any. */
export async function sessionFailure(run: (io: StreamIO) => Promise<number | void>, io: StreamIO): Promise<Error | undefined> {
  try {
    const code = await run(io);
    return typeof code === 'number' && code !== 0 ? new ExitCodeError(code) : undefined;
  } catch (err) {
    return err as Error;
  }
}

export function errorPayload(protocol: string, error: Error | undefined): Buffer | undefined {
  if (protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io') return Buffer.from(JSON.stringify(statusFor(error)));
  return error ? Buffer.from(error.message) : undefined;
}

/** Parses the concatenated JSON objects of a resize stream ({"Width":W,"Height":H}). */
export class ResizeDecoder {
  #text = '';

  push(chunk: Buffer | string): TerminalSize[] {
    this.#text += chunk.toString();
    const sizes: TerminalSize[] = [];
    let depth = 0;
    let start = -1;
    let inString = false;
    let consumed = 0;
    for (let i = 0; i < this.#text.length; i++) {
      const c = this.#text[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === '{') {
        if (depth === 0) start = i;
        depth++;
      } else if (c === '}') {
        depth--;
        if (depth === 0 && start >= 0) {
          try {
            const value = JSON.parse(this.#text.slice(start, i + 1)) as { Width?: number; Height?: number };
            sizes.push({ width: Number(value.Width ?? 0), height: Number(value.Height ?? 0) });
          } catch {
            // not a size: skipped
          }
          consumed = i + 1;
          start = -1;
        }
      }
    }
    this.#text = this.#text.slice(consumed);
    if (this.#text.length > 64 * 1024) this.#text = '';
    return sizes;
  }
}

/** Terminal sizes from a resize stream: 'resize' events, and the latest size seen. */
export function resizeEmitterFrom(source: Readable | undefined): EventEmitter<{ resize: [TerminalSize] }> & { readonly latest?: TerminalSize } {
  const emitter = new EventEmitter<{ resize: [TerminalSize] }>() as EventEmitter<{ resize: [TerminalSize] }> & { latest?: TerminalSize };
  if (source) {
    const decoder = new ResizeDecoder();
    source.on('data', (chunk: Buffer) => {
      for (const size of decoder.push(chunk)) {
        emitter.latest = size;
        emitter.emit('resize', size);
      }
    });
    source.on('error', () => undefined);
  }
  return emitter;
}

/**
 * Serves one exec or attach over an upgraded SPDY connection: accepts the streams the
 * client opens (replying to each), waits for those the request calls for, runs the
 * session and reports its end on the error stream.
 */
export async function serveRemoteCommandSpdy(session: SpdySession, protocol: string, options: StreamOptions, run: (io: StreamIO) => Promise<number | void>): Promise<void> {
  const version = protocol === 'channel.k8s.io' || protocol === '' ? 1 : Number(protocol[1]);
  const expected = new Set<string>(['error']);
  if (options.stdin) expected.add('stdin');
  if (options.stdout) expected.add('stdout');
  if (options.stderr && !options.tty) expected.add('stderr');
  if (options.tty && version >= 3) expected.add('resize');
  const streams = new Map<string, SpdyStream>();
  const abort = new AbortController();
  session.on('close', () => abort.abort());
  session.on('error', () => undefined);

  const ready = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), STREAM_CREATION_TIMEOUT_MS);
    const check = () => {
      if ([...expected].every((t) => streams.has(t))) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    session.on('stream', (stream) => {
      const type = stream.headers['streamtype'] ?? '';
      stream.on('error', () => undefined);
      stream.reply();
      if (!['error', 'stdin', 'stdout', 'stderr', 'resize'].includes(type) || streams.has(type)) {
        stream.reset();
        return;
      }
      streams.set(type, stream);
      check();
    });
    session.on('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
    check();
  });
  if (!(await ready)) {
    session.close();
    return;
  }

  const errorStream = streams.get('error')!;
  // The client never writes to the error stream: what arrives there is drained.
  errorStream.resume();
  const stdout = streams.get('stdout');
  const stderr = streams.get('stderr');
  const io: StreamIO = {
    stdin: streams.get('stdin'),
    stdout,
    stderr,
    tty: options.tty,
    resize: resizeEmitterFrom(streams.get('resize')),
    signal: abort.signal,
  };
  const failure = await sessionFailure(run, io);
  if (session.closed) return;
  await Promise.all([endWritable(stdout), endWritable(stderr)]);
  const payload = errorPayload(protocol, failure);
  if (payload) errorStream.write(payload);
  await endWritable(errorStream);
  session.close();
}

export function endWritable(stream: Writable | undefined): Promise<void> {
  if (!stream || stream.writableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.end(() => resolve());
    stream.once('error', () => resolve());
    stream.once('close', () => resolve());
  });
}
