// What the streaming server needs from the rest of berthd. The server knows the
// protocols (SPDY, WebSocket, the remote-command and port-forward conventions); the
// container and pod modules know how to run a command, reach a container's stdio or
// open a port inside a pod. Each side sees only these types.
import type { EventEmitter } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

/** The client's side of one exec or attach, as plain Node streams. */
export interface StreamIO {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  tty: boolean;
  /**
   * Emits 'resize' with a TerminalSize (TTY sessions). `latest` is the last size the
   * client sent: clients send their terminal's size as soon as the session opens, before
   * the command (and its terminal) exists, so a backend applies it once it can.
   */
  resize: EventEmitter<{ resize: [TerminalSize] }> & { readonly latest?: TerminalSize };
  /** Aborted when the client has gone away: whatever runs for it must end. */
  signal: AbortSignal;
}

export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface AttachRequest {
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface PortForwardRequest {
  podId: string;
  ports: number[];
}

export interface StreamBackends {
  /** Runs the command in the container; resolves with its exit code. */
  exec(request: ExecRequest, io: StreamIO): Promise<number>;
  /** Connects to the container's stdio until it exits, the client leaves or stdin ends (stdin_once). */
  attach(request: AttachRequest, io: StreamIO): Promise<void>;
  /** Carries one connection to localhost:port inside the pod's network namespace. */
  portForward(podId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void>;
}

/** An error whose exit code the remote-command status reports (NonZeroExitCode). */
export class ExitCodeError extends Error {
  constructor(readonly exitCode: number) {
    super(`command terminated with non-zero exit code: exit status ${exitCode}`);
  }
}

/** What the CRI handlers get from the streaming server: a URL per request. */
export interface StreamUrls {
  execUrl(request: ExecRequest): string;
  attachUrl(request: AttachRequest): string;
  portForwardUrl(request: PortForwardRequest): string;
}
