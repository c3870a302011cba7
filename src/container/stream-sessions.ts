// Streaming exec and attach on the container side.
//
// - exec without a TTY: `runc exec` as berthd's child with pipes for stdio; its exit
//   code is the command's.
// - exec with a TTY: runc hands the pty master to whoever listens on --console-socket,
//   as an fd over SCM_RIGHTS, which Node cannot receive. conmon can (it does so for
//   every TTY container), and its exec mode (`conmon --exec --exec-attach -t`, what
//   podman uses) keeps the pty, serves it on an attach socket like a container's, takes
//   resizes on its control fifo and reports the exit code on its sync pipe. One code
//   path then serves exec -t and attach, and conmon (not berthd) is what holds the pty.
// - attach: conmon's attach socket (SOCK_SEQPACKET: each message from conmon is one
//   packet, a stream byte — 2 stdout, 3 stderr — then data; what is written to it goes
//   to the container's stdin). Node cannot open SEQPACKET sockets either, so a small
//   Perl program (Perl and its Socket module are in every Debian system: perl-base is
//   Essential) connects and re-frames packets as length-prefixed records on a pipe.
//   Resizes go to conmon's control fifo as "1 HEIGHT WIDTH\n".
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { internal } from '../errors.js';
import type { StreamIO, TerminalSize } from '../stream/backends.js';
import type { ContainerRuntime } from './oci-runtime.js';

const ATTACH_HELPER = String.raw`
use strict; use warnings; use Socket;
my $path = shift @ARGV;
socket(my $s, AF_UNIX, SOCK_SEQPACKET, 0) or die "socket: $!\n";
connect($s, pack_sockaddr_un($path)) or die "cannot connect to $path: $!\n";
$| = 1;
syswrite(STDOUT, pack('N', 0));
my $in_open = 1;
while (1) {
  my $rin = '';
  vec($rin, fileno($s), 1) = 1;
  vec($rin, fileno(STDIN), 1) = 1 if $in_open;
  my $n = select(my $rout = $rin, undef, undef, undef);
  next if $n < 0 && $!{EINTR};
  die "select: $!\n" if $n < 0;
  if (vec($rout, fileno($s), 1)) {
    my $got = sysread($s, my $buf, 65536);
    next if !defined($got) && $!{EINTR};
    last if !$got;
    my $frame = pack('N', length $buf) . $buf;
    while (length $frame) { my $w = syswrite(STDOUT, $frame); die "stdout: $!\n" unless defined $w; substr($frame, 0, $w) = ''; }
  }
  if ($in_open && vec($rout, fileno(STDIN), 1)) {
    my $got = sysread(STDIN, my $buf, 8192);
    next if !defined($got) && $!{EINTR};
    if (!$got) { shutdown($s, 1); $in_open = 0; next; }
    send($s, $buf, 0) // die "send: $!\n";
  }
}
`;

const STDOUT_PIPE = 2;
const STDERR_PIPE = 3;

/** A connection to a conmon attach socket through the helper. */
class AttachConnection {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly done: Promise<void>;
  #buffer = Buffer.alloc(0);
  #stderr = '';

  constructor(dir: string, private readonly io: StreamIO) {
    // The socket is named relative to its directory: full paths can exceed sun_path.
    this.child = spawn('perl', ['-e', ATTACH_HELPER, 'attach'], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let markReady: () => void = () => undefined;
    let fail: (e: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      markReady = resolve;
      fail = reject;
    });
    this.ready.catch(() => undefined);
    let readySeen = false;
    this.child.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.child.stdin!.on('error', () => undefined);
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 4) {
        const length = this.#buffer.readUInt32BE(0);
        if (this.#buffer.length < 4 + length) break;
        const packet = this.#buffer.subarray(4, 4 + length);
        this.#buffer = this.#buffer.subarray(4 + length);
        if (!readySeen) {
          readySeen = true;
          markReady();
          continue;
        }
        this.#deliver(packet);
      }
    });
    this.done = new Promise((resolve) => {
      this.child.on('close', () => {
        fail(internal(`cannot attach: ${this.#stderr.trim() || 'the attach helper ended'}`));
        resolve();
      });
      this.child.on('error', (err) => fail(internal(`cannot run perl for attach: ${err.message}`)));
    });
  }

  #deliver(packet: Buffer): void {
    if (packet.length < 1) return;
    const data = packet.subarray(1);
    const target: Writable | undefined = packet[0] === STDERR_PIPE ? (this.io.tty ? this.io.stdout : this.io.stderr) : packet[0] === STDOUT_PIPE ? this.io.stdout : undefined;
    if (!target || target.destroyed || target.writableEnded) return;
    // Backpressure: a slow client stops the helper, and conmon's socket fills.
    if (!target.write(data)) {
      this.child.stdout!.pause();
      // A client that goes away never drains: its close lets the helper read on (and
      // what it reads is dropped above), so conmon is never left blocked writing to it.
      const resume = () => {
        target.off('drain', resume);
        target.off('close', resume);
        this.child.stdout!.resume();
      };
      target.on('drain', resume);
      target.on('close', resume);
    }
  }

  /** Copies the client's stdin to the container; its end is passed on as a half-close. */
  pipeStdin(): void {
    const stdin = this.io.stdin;
    if (!stdin) return;
    stdin.pipe(this.child.stdin!);
  }

  close(): void {
    this.child.stdin!.destroy();
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** Writes a resize to a conmon control fifo without ever blocking on a conmon that is gone. */
async function resizeThroughFifo(ctl: string, size: TerminalSize): Promise<void> {
  if (size.width <= 0 || size.height <= 0) return;
  const handle = await open(ctl, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return;
  try {
    await handle.write(`1 ${Math.min(size.height, 1000)} ${Math.min(size.width, 1000)}\n`);
  } catch {
    // conmon gone or fifo full: a resize is not worth failing for
  } finally {
    await handle.close();
  }
}

/**
 * Passes the client's terminal sizes to conmon from now on, starting with the latest one
 * it sent (the size at the start, sent before the terminal existed). Returns the undo.
 */
function followResizes(io: StreamIO, ctl: string): () => void {
  // One write at a time, in order: two resizes in a row (stty sets rows, then columns)
  // must not reach conmon the other way round.
  let queue = Promise.resolve();
  const onResize = (size: TerminalSize) => {
    queue = queue.then(() => resizeThroughFifo(ctl, size));
  };
  io.resize.on('resize', onResize);
  if (io.resize.latest) onResize(io.resize.latest);
  return () => io.resize.off('resize', onResize);
}

/** Attaches to a running container's stdio through conmon until it ends or the client leaves. */
export async function attachToConmon(socketDir: string, ctl: string, io: StreamIO): Promise<void> {
  const connection = new AttachConnection(socketDir, io);
  const onAbort = () => connection.close();
  io.signal.addEventListener('abort', onAbort);
  // A client that left before the helper was started never fires 'abort' again.
  if (io.signal.aborted) connection.close();
  let unfollow = () => {};
  try {
    await connection.ready;
    if (io.tty) unfollow = followResizes(io, ctl);
    connection.pipeStdin();
    await connection.done;
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    unfollow();
    connection.close();
  }
}

/** exec without a TTY: `runc exec` with pipes. Resolves with the exit code. */
export async function execWithPipes(runtime: ContainerRuntime, containerId: string, cmd: string[], io: StreamIO, pidFile: string): Promise<number> {
  const child = spawn(runtime.options.path, [...runtime.globalArgs, 'exec', '--pid-file', pidFile, containerId, ...cmd], {
    stdio: [io.stdin ? 'pipe' : 'ignore', io.stdout ? 'pipe' : 'ignore', io.stderr ? 'pipe' : 'ignore'],
  });
  const kill = async () => {
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  const onAbort = () => void kill();
  io.signal.addEventListener('abort', onAbort);
  if (io.stdin && child.stdin) {
    child.stdin.on('error', () => undefined);
    io.stdin.pipe(child.stdin);
  }
  const outputs: Promise<void>[] = [];
  for (const [from, to] of [[child.stdout, io.stdout], [child.stderr, io.stderr]] as const) {
    if (!from || !to) continue;
    from.pipe(to, { end: false });
    outputs.push(new Promise((resolve) => from.once('close', () => resolve())));
  }
  try {
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(internal(`cannot run ${runtime.options.path}: ${err.message}`)));
      child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 + 9 : -1)));
    });
    // What the command wrote is still in the pipes; a background child that keeps them
    // open must not hold the session, so the wait is short.
    await Promise.race([Promise.all(outputs), new Promise((r) => setTimeout(r, 1000))]);
    return code;
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    if (io.stdin && child.stdin) io.stdin.unpipe(child.stdin);
    child.stdout?.destroy();
    child.stderr?.destroy();
  }
}

export interface TerminalExecOptions {
  runtime: ContainerRuntime;
  conmon: string;
  containerId: string;
  /** The container's OCI process (from its config.json): user, env, cwd, capabilities. */
  process: Record<string, unknown>;
  cmd: string[];
  sessionRoot: string;
  socketDir: string;
}

/** exec with a TTY under conmon's exec mode. Resolves with the exit code. */
export async function execWithTerminal(options: TerminalExecOptions, io: StreamIO): Promise<number> {
  const sessionId = `exec-${randomBytes(8).toString('hex')}`;
  const dir = join(options.sessionRoot, sessionId);
  await mkdir(join(dir, 'exit'), { recursive: true, mode: 0o700 });
  await mkdir(options.socketDir, { recursive: true, mode: 0o700 });
  const env = ((options.process.env as string[] | undefined) ?? []).filter((e) => !e.startsWith('TERM='));
  const spec = { ...options.process, args: options.cmd, terminal: true, env: [...env, 'TERM=xterm'] };
  await writeFile(join(dir, 'process.json'), JSON.stringify(spec));
  const args = [
    '--api-version', '1',
    '-c', options.containerId,
    '-u', sessionId,
    '-n', sessionId,
    '-r', options.runtime.options.path,
    '-b', dir,
    '-p', join(dir, 'pid'),
    '-l', `k8s-file:${join(dir, 'output.log')}`,
    '--exit-dir', join(dir, 'exit'),
    '--socket-dir-path', options.socketDir,
    '--exec', '--exec-process-spec', join(dir, 'process.json'), '--exec-attach', '-t',
    ...(io.stdin ? ['-i'] : []),
    ...options.runtime.globalArgs.flatMap((a) => ['--runtime-arg', a]),
  ];
  // fd 3: sync pipe (pid, then exit code, as JSON lines); 4: start pipe (written
  // twice: once to let conmon fork, once to let the runtime run after berth attached);
  // 5: attach pipe (conmon says when its attach socket listens).
  const child = spawn(options.conmon, args, {
    cwd: dir, // conmon's `oom` marker lands in its working directory
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, _OCI_SYNCPIPE: '3', _OCI_STARTPIPE: '4', _OCI_ATTACHPIPE: '5' },
  });
  const stdio = child.stdio as unknown as unknown[];
  const [sync, start, attachPipe] = [stdio[3], stdio[4], stdio[5]] as unknown as [NodeJS.ReadableStream & { destroy(): void }, Writable, NodeJS.ReadableStream & { destroy(): void }];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  start.on('error', () => undefined);
  const messages = jsonLines(sync);
  const attached = jsonLines(attachPipe);
  let execPid = 0;
  const kill = () => {
    if (execPid > 0) {
      try {
        process.kill(execPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  let connection: AttachConnection | undefined;
  // The client is gone: the command is killed, and the helper with it, since nobody reads
  // what it relays. Left alone, a helper blocked on a full pipe would block conmon's
  // drain of the terminal, and conmon would never report the exit this waits for.
  const onAbort = () => {
    kill();
    connection?.close();
  };
  io.signal.addEventListener('abort', onAbort);
  let unfollow = () => {};
  try {
    start.write('0');
    const attachMessage = await attached.next();
    if (attachMessage === undefined) throw internal(`conmon could not prepare the exec session: ${stderr.trim() || 'no reason given'}`);
    connection = new AttachConnection(join(options.socketDir, sessionId), io);
    await connection.ready;
    start.write('1');
    start.end();
    const started = await messages.next();
    if (!started || typeof started.data !== 'number' || started.data <= 0) {
      throw internal(`cannot exec in container ${options.containerId}: ${String(started?.message ?? stderr.trim() ?? 'no reason given').trim()}`);
    }
    execPid = started.data;
    // A client that left while the command was starting: its abort found no pid to kill.
    if (io.signal.aborted) kill();
    // conmon has the terminal now: the sizes the client sent so far, and later ones.
    unfollow = followResizes(io, join(dir, 'ctl'));
    connection.pipeStdin();
    const ended = await messages.next();
    // The attach socket closes when conmon exits, after it has drained the pty.
    await Promise.race([connection.done, new Promise((r) => setTimeout(r, 2000))]);
    if (!ended || typeof ended.data !== 'number') throw internal(`conmon did not report how the command in container ${options.containerId} ended`);
    return ended.data;
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    unfollow();
    if (io.signal.aborted) kill();
    connection?.close();
    sync.destroy();
    attachPipe.destroy();
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    await rm(join(options.socketDir, sessionId), { force: true }).catch(() => undefined);
  }
}

/** Reads JSON lines from a pipe, one per next(); undefined at the end. */
function jsonLines(stream: NodeJS.ReadableStream): { next(): Promise<{ data?: number; message?: string } | undefined> } {
  let text = '';
  let ended = false;
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  stream.on('data', (d: Buffer) => {
    text += d.toString();
    wake();
  });
  stream.on('end', () => {
    ended = true;
    wake();
  });
  stream.on('close', () => {
    ended = true;
    wake();
  });
  stream.on('error', () => undefined);
  return {
    async next() {
      for (;;) {
        const newline = text.indexOf('\n');
        if (newline >= 0) {
          const line = text.slice(0, newline).trim();
          text = text.slice(newline + 1);
          if (!line) continue;
          try {
            return JSON.parse(line) as { data?: number; message?: string };
          } catch {
            continue;
          }
        }
        if (ended) return undefined;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}
