// berthctl's side of the streaming protocols: what client-go's remotecommand and
// portforward packages do for kubectl and crictl, over SPDY/3.1. Works against any CRI
// runtime's streaming server (berthd's, containerd's, CRI-O's).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { createServer, type Server } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { EventEmitter } from 'node:events';
import { SpdySession, type SpdyStream } from '../stream/spdy.js';
import { SPDY_REMOTE_COMMAND_PROTOCOLS } from '../stream/remote-command.js';
import { PORT_FORWARD_PROTOCOL } from '../stream/port-forward.js';
import type { TerminalSize } from '../stream/backends.js';

export class StreamClientError extends Error {}

/** Upgrades an HTTP request on `url` to SPDY/3.1, offering `protocols` in order. */
export function spdyConnect(url: string, protocols: string[]): Promise<{ session: SpdySession; protocol: string }> {
  const target = new URL(url);
  const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, {
    method: 'POST',
    headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': protocols, 'Content-Length': '0' },
  });
  return new Promise((resolve, reject) => {
    request.on('upgrade', (response, socket: Socket, head: Buffer) => {
      const chosen = String(response.headers['x-stream-protocol-version'] ?? '');
      resolve({ session: new SpdySession(socket, 'client', head), protocol: chosen });
    });
    request.on('response', (response) => {
      let body = '';
      response.on('data', (d: Buffer) => (body += d.toString()));
      response.on('end', () => reject(new StreamClientError(`unable to upgrade connection: ${body.trim() || `${response.statusCode} ${response.statusMessage}`}`)));
    });
    request.on('error', (err) => reject(new StreamClientError(`cannot connect to the streaming server ${target.host}: ${err.message}`)));
    request.end();
  });
}

export interface RemoteCommandOptions {
  stdin?: Readable;
  stdout: Writable;
  stderr?: Writable;
  tty: boolean;
  /** Emits 'resize' with the local terminal's size (TTY sessions). */
  resize?: EventEmitter<{ resize: [TerminalSize] }>;
  initialSize?: TerminalSize;
}

/** Reads a stream to its end. */
function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('close', () => resolve(Buffer.concat(parts)));
    stream.on('error', () => resolve(Buffer.concat(parts)));
  });
}

function finished(stream: Readable | undefined): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
    stream.once('error', () => resolve());
  });
}

/** The exit code the error stream's content stands for (0: success); throws other failures. */
export function exitCodeFromErrorStream(protocol: string, payload: Buffer): number {
  const text = payload.toString().trim();
  if (protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io') {
    if (!text) return 0;
    let status: { status?: string; message?: string; reason?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
    try {
      status = JSON.parse(text) as typeof status;
    } catch {
      throw new StreamClientError(`error stream: ${text}`);
    }
    if (status.status === 'Success') return 0;
    if (status.reason === 'NonZeroExitCode') {
      const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
      const code = Number(cause?.message);
      if (Number.isInteger(code)) return code;
    }
    throw new StreamClientError(status.message || text);
  }
  if (!text) return 0;
  throw new StreamClientError(text);
}

/** Runs an exec or attach session against a streaming URL; resolves with the exit code. */
export async function remoteCommand(url: string, options: RemoteCommandOptions): Promise<number> {
  const { session, protocol } = await spdyConnect(url, SPDY_REMOTE_COMMAND_PROTOCOLS);
  session.on('error', () => undefined);
  try {
    const errorStream = await session.openStream({ streamtype: 'error' });
    errorStream.end();
    const errorText = readAll(errorStream);
    const stdin = options.stdin ? await session.openStream({ streamtype: 'stdin' }) : undefined;
    const stdout = await session.openStream({ streamtype: 'stdout' });
    const stderr = !options.tty && options.stderr ? await session.openStream({ streamtype: 'stderr' }) : undefined;
    const resize = options.tty && protocol !== 'v2.channel.k8s.io' && protocol !== 'channel.k8s.io' ? await session.openStream({ streamtype: 'resize' }) : undefined;
    for (const s of [stdout, stderr, resize, stdin]) s?.on('error', () => undefined);
    if (resize) {
      resize.resume();
      const send = (size: TerminalSize) => {
        if (!resize.writableEnded && !resize.destroyed) resize.write(JSON.stringify({ Width: size.width, Height: size.height }));
      };
      if (options.initialSize) send(options.initialSize);
      options.resize?.on('resize', send);
    }
    if (stdin && options.stdin) {
      stdin.resume();
      options.stdin.pipe(stdin);
    }
    stdout.pipe(options.stdout, { end: false });
    if (stderr && options.stderr) stderr.pipe(options.stderr, { end: false });
    const [payload] = await Promise.all([errorText, finished(stdout), finished(stderr)]);
    return exitCodeFromErrorStream(protocol, payload);
  } finally {
    if (options.stdin) options.stdin.unpipe();
    session.close();
  }
}

/**
 * Forwards local TCP connections to a pod's port through a port-forward URL (one SPDY
 * connection; per local connection an error and a data stream, as client-go does).
 * Resolves with the listening server; the session's end closes it.
 */
export async function portForward(url: string, localAddress: string, localPort: number, remotePort: number, onError: (message: string) => void): Promise<{ server: Server; closed: Promise<void> }> {
  const { session } = await spdyConnect(url, [PORT_FORWARD_PROTOCOL]);
  session.on('error', () => undefined);
  let requestId = 0;
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    const id = String(requestId++);
    void (async () => {
      let data: SpdyStream | undefined;
      try {
        const error = await session.openStream({ streamtype: 'error', port: String(remotePort), requestid: id });
        error.end();
        void readAll(error).then((text) => {
          if (text.length > 0) {
            onError(text.toString());
            socket.destroy();
          }
        });
        data = await session.openStream({ streamtype: 'data', port: String(remotePort), requestid: id });
        data.on('error', () => socket.destroy());
        socket.pipe(data);
        data.pipe(socket);
      } catch (err) {
        onError((err as Error).message);
        socket.destroy();
        data?.reset();
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localPort, localAddress, () => resolve());
  });
  const closed = new Promise<void>((resolve) =>
    session.on('close', () => {
      server.close();
      resolve();
    }),
  );
  return { server, closed };
}
