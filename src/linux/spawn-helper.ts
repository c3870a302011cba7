// A warm spawning helper: one small perl process that forks and execs host tools (mount,
// umount, unshare, ip, the CNI plugins, conmon…) on berthd's behalf. Node's spawn forks
// the whole berthd process and blocks its event loop until the child has exec'd (2-10 ms
// a child here under load, every other call waiting meanwhile); the helper's fork costs
// ~1 ms and berthd only writes a request and reads an answer. Requests run side by side.
//
// Wire (both ways): frames of a 4-byte big-endian length, then the payload; strings are a
// u32 length and the bytes.
//   requests 'S' id(u32) flags(u8) argc(u32) argv… envc(u32) env("K=V")… stdin cwd   start a child
//              flags: 1 setsid (its own session and process group), 2 env given (else the
//              helper's own), 4 a pipe on its fd 3 (conmon's sync pipe), 8 stdout to /dev/null,
//              16 argv is one of the helper's own operations (mount, umount, pin, init, rmtree), no exec
//            'R' id                         release: close the helper's ends of its pipes, forget it
//   answers  'P' id pid(u32)                the child exists (for timeouts: kill it or its group)
//            'D' id bytes                   what came through its fd 3, as it comes
//            'Q' id status(u32)             it exited while its output is still open (a daemon's children keep it)
//            'X' id status(u32) stdout stderr  it has exited and its output is closed (wait status as waitpid gives it)
//            'F' id message                 it could not be forked or exec'd
// The helper exits when its stdin closes (berthd went, or it was idle); berthd starts it on
// demand and lets it go after IDLE_MS without a request, so it costs no memory at idle.
// Where perl cannot be started, children are spawned by Node as before
// (BERTH_SPAWN_HELPER=0 makes berthd do that too).
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';

const HELPER = String.raw`
use strict; use warnings; use Fcntl qw(F_GETFL F_SETFD F_SETFL O_NONBLOCK);
# setsid(2) and dup3(2) by their syscall numbers (berthd passes them for its arch); POSIX
# (~1.5 MB resident) only without them.
my ($SETSID, $DUP3, $UNSHARE, $SETHOSTNAME, $MOUNT, $UMOUNT2, $SETGROUPS, $SETRESGID, $SETRESUID) = map { 0 + $_ } @ARGV;
require POSIX if !$SETSID;
$0 = 'berth-spawn-helper';
$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = sub {};
binmode STDIN; binmode STDOUT;
my (%kids, %byfd, %byin, %byid, %where);
# A tool named without a slash is looked up in PATH once and its path kept (execvp tries
# each of PATH's dirs in turn: ~10 failed execs a child here); a kept path that is no
# longer an executable file is looked up again.
sub resolve {
  my ($name) = @_;
  return $name if index($name, '/') >= 0;
  my $kept = $where{$name};
  return $kept if defined $kept && -f $kept && -x _;
  for my $dir (split /:/, (defined $ENV{PATH} ? $ENV{PATH} : '/usr/sbin:/usr/bin:/sbin:/bin')) {
    next unless length $dir;
    my $path = "$dir/$name";
    if (-f $path && -x _) { $where{$name} = $path; return $path; }
  }
  delete $where{$name};
  return $name;
}
# Host operations made in the forked child itself, with no exec (flag 16): argv names the
# operation. A failure is a line on stderr and exit 32 (mount(8)'s code).
sub fail { syswrite(STDERR, "$_[0]\n"); exit 32; }
sub builtin {
  my ($op, @a) = @_;
  if ($op eq 'mount') {
    my ($source, $target, $type, $flags, $data) = @a;
    syscall($MOUNT, $source, $target, (length $type ? $type : 0), 0 + $flags, (length $data ? $data : 0)) == 0 or fail("mount $target: $!");
  } elsif ($op eq 'umount') {
    my ($flags, @targets) = @a; my $bad = '';
    for my $t (@targets) { syscall($UMOUNT2, $t, 0 + $flags) == 0 or $bad .= "umount $t: $!\n"; }
    if (length $bad) { syswrite(STDERR, $bad); exit 32; }
  } elsif ($op eq 'pin') {
    # unshare(2) the namespaces in the mask, set the hostname, bring lo up (SIOCGIFFLAGS,
    # SIOCSIFFLAGS with IFF_UP), and bind-mount each new namespace onto its pin file.
    my ($mask, $hostname, $lo, @pins) = @a;
    syscall($UNSHARE, 0 + $mask) == 0 or fail("unshare: $!");
    if (length $hostname) { syscall($SETHOSTNAME, $hostname, length($hostname)) == 0 or fail("sethostname: $!"); }
    if ($lo) {
      socket(my $s, 2, 2, 0) or fail("socket: $!");
      my $ifr = pack('Z16 x24', 'lo');
      ioctl($s, 0x8913, $ifr) or fail("lo: SIOCGIFFLAGS: $!");
      $ifr = pack('Z16 s x22', 'lo', unpack('x16 s', $ifr) | 1);
      ioctl($s, 0x8914, $ifr) or fail("lo up: $!");
    }
    while (my ($kind, $file) = splice(@pins, 0, 2)) { syscall($MOUNT, "/proc/self/ns/$kind", $file, 0, 4096, 0) == 0 or fail("pinning $kind at $file: $!"); }
  } elsif ($op eq 'init') {
    # A PID namespace with CMD as its init, pinned at PIN: unshare(2), fork (the child is
    # pid 1 there), which chroots into ROOT, drops to uid and gid ID with no groups and
    # execs CMD; an exec that did not happen is told through a close-on-exec pipe. Then
    # the namespace is bind-mounted on the pin and the init's host pid written out.
    my ($pin, $root, $id, @cmd) = @a;
    syscall($UNSHARE, 0x20000000) == 0 or fail("unshare: $!");
    pipe(my $r, my $w) or fail("pipe: $!");
    my $pid = fork;
    defined $pid or fail("fork: $!");
    if ($pid == 0) {
      close $r;
      open(STDIN, '<', '/dev/null'); open(STDOUT, '>', '/dev/null'); open(STDERR, '>', '/dev/null');
      my $e;
      if (!chroot($root)) { $e = "chroot $root: $!"; }
      elsif (!chdir('/')) { $e = "chdir /: $!"; }
      elsif (syscall($SETGROUPS, 0, 0) != 0) { $e = "setgroups: $!"; }
      elsif (syscall($SETRESGID, 0 + $id, 0 + $id, 0 + $id) != 0) { $e = "setresgid: $!"; }
      elsif (syscall($SETRESUID, 0 + $id, 0 + $id, 0 + $id) != 0) { $e = "setresuid: $!"; }
      else { no warnings 'exec'; exec { $cmd[0] } @cmd; $e = "exec $cmd[0]: $!"; }
      syswrite($w, $e); exit 127;
    }
    close $w;
    my $said = '';
    while (sysread($r, my $b, 512)) { $said .= $b; }
    if (length $said) { waitpid($pid, 0); fail($said); }
    if (syscall($MOUNT, "/proc/$pid/ns/pid", $pin, 0, 4096, 0) != 0) { my $e = "$!"; kill 9, $pid; fail("pinning the PID namespace at $pin: $e"); }
    syswrite(STDOUT, "$pid\n");
  } elsif ($op eq 'rmtree') {
    # A tree in berth's trash (see trash.ts), removed at low priority without following a
    # symlink or crossing onto another filesystem; what cannot go stays for the next try.
    setpriority(0, 0, 10);
    my $bad = 0;
    for my $top (@a) {
      my @st = lstat $top or next;
      my $dev = $st[0];
      my @dirs; my @todo = ($top);
      while (defined(my $d = pop @todo)) {
        my @s = lstat $d or next;
        if (-d _ && $s[0] == $dev) {
          push @dirs, $d;
          opendir(my $h, $d) or do { $bad = 1; next; };
          push @todo, map { "$d/$_" } grep { $_ ne '.' && $_ ne '..' } readdir $h;
          closedir $h;
        } elsif (-d _) { $bad = 1; } else { unlink $d or $bad = 1; }
      }
      rmdir $_ or $bad = 1 for reverse @dirs;
    }
    fail("rmtree: some entries were left") if $bad;
  } else { fail("unknown operation $op"); }
  exit 0;
}
my $inbuf = '';
sub reply { my $f = pack('N/a*', $_[0]); while (length $f) { my $w = syswrite(STDOUT, $f); if (!defined $w) { next if $!{EINTR}; exit 0; } substr($f, 0, $w) = ''; } }
sub strs { my ($n, $r) = @_; my @s; for (1..$n) { my $l = unpack('N', substr($$r, 0, 4, '')); push @s, substr($$r, 0, $l, ''); } return @s; }
sub forget {
  my ($pid) = @_; my $k = delete $kids{$pid}; delete $byid{$k->{id}};
  for my $fd (keys %byfd) { if ($byfd{$fd}[0] == $pid) { close $byfd{$fd}[2]; delete $byfd{$fd}; } }
  for my $fd (keys %byin) { if ($byin{$fd} == $pid) { close $k->{in}; delete $byin{$fd}; } }
}
sub finish {
  my ($pid) = @_; my $k = $kids{$pid};
  return if !$k || !defined $k->{status} || $k->{open} > 0;
  forget($pid);
  if (defined $k->{execerr} && length $k->{execerr}) { reply(pack('a N N/a*', 'F', $k->{id}, "exec: $k->{execerr}")); }
  else { reply(pack('a N N N/a* N/a*', 'X', $k->{id}, $k->{status}, $k->{out}, $k->{err})); }
}
sub reap {
  while ((my $p = waitpid(-1, 1)) > 0) {
    my $k = $kids{$p}; next unless $k;
    $k->{status} = $?;
    reply(pack('a N N', 'Q', $k->{id}, $?)) if $k->{open} > 0 && !(defined $k->{execerr} && length $k->{execerr});
    finish($p);
  }
}
sub start {
  my ($req) = @_;
  my (undef, $id, $flags, $argc) = unpack('a N C N', substr($req, 0, 10, ''));
  my @argv = strs($argc, \$req);
  my $envc = unpack('N', substr($req, 0, 4, ''));
  my @env = strs($envc, \$req);
  my ($stdin, $cwd) = strs(2, \$req);
  my ($ir, $iw, $or, $ow, $er, $ew, $xr, $xw, $sr, $sw);
  unless (pipe($ir, $iw) && pipe($or, $ow) && pipe($er, $ew) && pipe($xr, $xw) && (!($flags & 4) || pipe($sr, $sw))) { reply(pack('a N N/a*', 'F', $id, "pipe: $!")); return; }
  my $path = ($flags & 18) ? $argv[0] : resolve($argv[0]);
  my $pid = fork;
  if (!defined $pid) { reply(pack('a N N/a*', 'F', $id, "fork: $!")); return; }
  if ($pid == 0) {
    $SIG{PIPE} = 'DEFAULT'; $SIG{CHLD} = 'DEFAULT';
    if ($flags & 1) { if ($SETSID) { syscall($SETSID); } else { POSIX::setsid(); } }
    if (length $cwd && !chdir($cwd)) { syswrite($xw, "chdir $cwd: $!"); exit 127; }
    open(STDIN, '<&', $ir);
    if ($flags & 8) { open(STDOUT, '>', '/dev/null'); } else { open(STDOUT, '>&', $ow); }
    open(STDERR, '>&', $ew);
    if ($flags & 4) { if (fileno($sw) == 3) { fcntl($sw, F_SETFD, 0); } else { if ($SETSID) { syscall($DUP3, fileno($sw), 3, 0); } else { POSIX::dup2(fileno($sw), 3); } } }
    if ($flags & 16) {
      # No exec closes the helper's other pipes here: a child that holds another's stdin
      # would keep its end of input from it.
      close $_->[2] for values %byfd;
      close $_->{in} for grep { $_->{in} } values %kids;
      builtin(@argv);
    }
    if ($flags & 2) { %ENV = (); for (@env) { my ($k, $v) = split /=/, $_, 2; $ENV{$k} = $v; } }
    { no warnings 'exec'; exec { $path } @argv; }
    # A kept path gone meanwhile: PATH as execvp searches it.
    if ($path ne $argv[0]) { no warnings 'exec'; exec { $argv[0] } @argv; }
    syswrite($xw, "$!"); exit 127;
  }
  close $ir; close $ow; close $ew; close $xw; close $sw if $sw;
  my $k = { id => $id, out => '', err => '', open => 3, execerr => undef, stdin => $stdin, in => $iw };
  $kids{$pid} = $k; $byid{$id} = $pid;
  $byfd{fileno $or} = [$pid, 'out', $or]; $byfd{fileno $er} = [$pid, 'err', $er]; $byfd{fileno $xr} = [$pid, 'x', $xr];
  if ($sr) { $byfd{fileno $sr} = [$pid, 'sync', $sr]; $k->{open}++; }
  if (length $stdin) { my $fl = fcntl($iw, F_GETFL, 0); fcntl($iw, F_SETFL, $fl | O_NONBLOCK); $byin{fileno $iw} = $pid; }
  else { close $iw; delete $k->{in}; }
  reply(pack('a N N', 'P', $id, $pid));
}
sub request {
  my ($req) = @_;
  my $kind = substr($req, 0, 1);
  if ($kind eq 'S') { start($req); }
  elsif ($kind eq 'R') { my $id = unpack('N', substr($req, 1, 4)); forget($byid{$id}) if defined $byid{$id}; }
}
my $stdin_open = 1;
while (1) {
  exit 0 if !$stdin_open;
  my ($rin, $win) = ('', '');
  vec($rin, 0, 1) = 1;
  vec($rin, $_, 1) = 1 for keys %byfd;
  vec($win, $_, 1) = 1 for keys %byin;
  my $wait = (grep { $_->{open} == 0 } values %kids) ? 0.001 : undef;
  my $n = select(my $rout = $rin, my $wout = $win, undef, $wait);
  if ($n < 0) { my $eintr = $!{EINTR}; my $why = "$!"; reap(); next if $eintr; die "select: $why\n"; }
  if (vec($rout, 0, 1)) {
    my $got = sysread(STDIN, my $buf, 65536);
    if (defined $got && $got == 0) { $stdin_open = 0; }
    $inbuf .= $buf if $got;
  }
  for my $fd (keys %byin) {
    next unless vec($wout, $fd, 1) && $byin{$fd};
    my $k = $kids{$byin{$fd}};
    my $w = syswrite($k->{in}, $k->{stdin});
    if (defined $w) { substr($k->{stdin}, 0, $w, ''); next if length $k->{stdin}; }
    elsif ($!{EAGAIN}) { next; }
    close $k->{in}; delete $k->{in}; delete $byin{$fd};
  }
  for my $fd (keys %byfd) {
    next unless vec($rout, $fd, 1) && $byfd{$fd};
    my ($pid, $kind, $fh) = @{$byfd{$fd}};
    my $got = sysread($fh, my $buf, 65536);
    next if !defined $got && $!{EINTR};
    my $k = $kids{$pid};
    if ($got) {
      if ($kind eq 'x') { $k->{execerr} .= $buf; }
      elsif ($kind eq 'sync') { reply(pack('a N a*', 'D', $k->{id}, $buf)); }
      elsif (length($k->{$kind}) < 4194304) { $k->{$kind} .= $buf; }
      next;
    }
    close $fh; delete $byfd{$fd};
    $k->{open}--;
    finish($pid);
  }
  reap();
  # Requests last: a release closes pipes and a start makes new ones, which may get the
  # same fd numbers; the loops above must only see the pipes the select was about (a
  # blocking read of a new child's stdout, before its stdin is written, would hang here).
  while (length($inbuf) >= 4) { my $l = unpack('N', $inbuf); last if length($inbuf) < 4 + $l; substr($inbuf, 0, 4, ''); request(substr($inbuf, 0, $l, '')); }
}
`;

/**
 * The numbers of setsid(2) and dup3(2) where Node runs: the helper makes those calls with
 * perl's syscall (perl-base's only other way is the POSIX module, ~1.5 MB of the helper's
 * ~7.4 resident). Another arch: the helper loads POSIX.
 */
const SYSCALLS: Partial<Record<NodeJS.Architecture, [setsid: number, dup3: number, unshare: number, sethostname: number, mount: number, umount2: number, setgroups: number, setresgid: number, setresuid: number]>> = {
  x64: [112, 292, 272, 170, 165, 166, 116, 119, 117],
  arm64: [157, 24, 97, 161, 40, 39, 159, 149, 147],
  riscv64: [157, 24, 97, 161, 40, 39, 159, 149, 147],
  loong64: [157, 24, 97, 161, 40, 39, 159, 149, 147],
};

/** How long the helper stays after its last request. */
const IDLE_MS = 10_000;

export interface HelperRequest {
  argv: string[];
  /** The child's whole environment; absent: the helper's (berthd's at the helper's start). */
  env?: Record<string, string>;
  stdin?: string;
  /** Its working directory (the helper's, which is berthd's, when absent). */
  cwd?: string;
  /** A session and process group of its own (setsid), so a timeout can kill all it started. */
  newSession?: boolean;
  /** Its stdout goes to /dev/null (a daemon that keeps it: nothing to wait for). */
  discardStdout?: boolean;
  /** A pipe on its fd 3 (conmon's sync pipe): what comes through is handed on as it comes. */
  onSync?: (data: Buffer) => void;
  /**
   * argv is one of the helper's own operations, made by the forked child with no exec
   * (see runHelperOperation): ['mount', source, target, fstype, flags, data], ['umount',
   * flags, target…], ['pin', unshare mask, hostname, lo (0/1), kind, file, …], ['rmtree', dir…], ['init', pin file, root, uid/gid, command…].
   */
  builtin?: boolean;
  /** Told the child's pid as soon as it exists. */
  onPid?: (pid: number) => void;
  /** Told the child's exit (code, or signal) when it comes before the end of its output (a daemon's children keep it open). */
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface HelperResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A child started through the helper: its result once it has exited and closed its output. */
export interface HelperChild {
  result: Promise<HelperResult>;
  /** The helper forgets the child and closes its ends of the pipes (a daemon that keeps them); result then never settles. */
  release(): void;
}

interface Pending {
  request: HelperRequest;
  resolve: (result: HelperResult) => void;
  reject: (err: Error) => void;
}

/** The exec or fork of a child failed (its `message` says why, as Node's spawn error would). */
export class HelperSpawnError extends Error {}

class SpawnHelper {
  #child: ChildProcess | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #idle: NodeJS.Timeout | undefined;
  /** perl could not be started: Node spawns children itself from then on. */
  unavailable = false;

  start(request: HelperRequest): HelperChild {
    const child = this.#ensure();
    const id = this.#nextId++ >>> 0;
    const result = new Promise<HelperResult>((resolve, reject) => this.#pending.set(id, { request, resolve, reject }));
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#ref(true);
    const flags = (request.newSession ? 1 : 0) | (request.env ? 2 : 0) | (request.onSync ? 4 : 0) | (request.discardStdout ? 8 : 0) | (request.builtin ? 16 : 0);
    const env = request.env ? Object.entries(request.env).map(([k, v]) => `${k}=${v}`) : [];
    const head = Buffer.alloc(10);
    head.write('S', 0, 'latin1');
    head.writeUInt32BE(id, 1);
    head.writeUInt8(flags, 5);
    head.writeUInt32BE(request.argv.length, 6);
    const envCount = Buffer.alloc(4);
    envCount.writeUInt32BE(env.length);
    this.#send(child, Buffer.concat([head, ...request.argv.map(str), envCount, ...env.map(str), str(request.stdin ?? ''), str(request.cwd ?? '')]));
    return {
      result,
      release: () => {
        if (!this.#pending.delete(id) || this.#child !== child) return;
        const release = Buffer.alloc(5);
        release.write('R', 0, 'latin1');
        release.writeUInt32BE(id, 1);
        this.#send(child, release);
        this.#settled();
      },
    };
  }

  #send(child: ChildProcess, payload: Buffer): void {
    const frame = Buffer.alloc(4);
    frame.writeUInt32BE(payload.length);
    child.stdin!.write(Buffer.concat([frame, payload]));
  }

  #ensure(): ChildProcess {
    if (this.#child) return this.#child;
    const numbers = SYSCALLS[process.arch] ?? [];
    const child = spawn('perl', ['-e', HELPER, ...numbers.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    child.stdin!.on('error', () => undefined);
    // Each helper's answers are framed on their own (a retired one may still be finishing).
    const reader = { buffer: Buffer.alloc(0) as Buffer };
    child.stdout!.on('data', (chunk: Buffer) => this.#read(reader, chunk));
    const gone = (why: string) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      clearTimeout(this.#idle);
      this.#idle = undefined;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending) p.reject(new Error(`the spawning helper went away (${why})${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
    };
    child.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.unavailable = true;
      gone(err.message);
    });
    child.on('close', (code, signal) => gone(signal ? `killed by ${signal}` : `exit ${code}`));
    return child;
  }

  #read(reader: { buffer: Buffer }, chunk: Buffer): void {
    reader.buffer = reader.buffer.length ? Buffer.concat([reader.buffer, chunk]) : chunk;
    while (reader.buffer.length >= 4) {
      const length = reader.buffer.readUInt32BE(0);
      if (reader.buffer.length < 4 + length) break;
      const answer = reader.buffer.subarray(4, 4 + length);
      reader.buffer = reader.buffer.subarray(4 + length);
      this.#answer(answer);
    }
  }

  #answer(answer: Buffer): void {
    const kind = String.fromCharCode(answer[0]!);
    const id = answer.readUInt32BE(1);
    const pending = this.#pending.get(id);
    if (!pending) return;
    if (kind === 'P') {
      pending.request.onPid?.(answer.readUInt32BE(5));
      return;
    }
    if (kind === 'D') {
      pending.request.onSync?.(answer.subarray(5));
      return;
    }
    if (kind === 'Q') {
      pending.request.onExit?.(...exitOf(answer.readUInt32BE(5)));
      return;
    }
    this.#pending.delete(id);
    if (kind === 'F') {
      const [message] = strings(answer, 5, 1);
      pending.reject(new HelperSpawnError(message!));
    } else {
      const [code, signal] = exitOf(answer.readUInt32BE(5));
      const [stdout, stderr] = strings(answer, 9, 2);
      pending.resolve({ code, signal, stdout: stdout!, stderr: stderr! });
    }
    this.#settled();
  }

  /** No request out any more: berthd's event loop need not wait, and the helper goes after IDLE_MS. */
  #settled(): void {
    if (this.#pending.size > 0) return;
    this.#ref(false);
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.#retire(), IDLE_MS);
    this.#idle.unref();
  }

  /** Idle: its stdin closes and it exits (nothing of it stays at idle). */
  #retire(): void {
    const child = this.#child;
    if (!child || this.#pending.size > 0) return;
    this.#child = undefined;
    child.stdin!.end();
  }

  /** While requests are out berthd's event loop waits for the helper; otherwise it does not. */
  #ref(on: boolean): void {
    const child = this.#child;
    if (!child) return;
    const handles = [child, child.stdin, child.stdout, child.stderr] as Array<{ ref?: () => void; unref?: () => void } | null>;
    for (const h of handles) (on ? h?.ref : h?.unref)?.call(h);
  }
}

/** A wait status: exited (low 7 bits 0, the code in the next 8) or killed by a signal. */
function exitOf(status: number): [number | null, NodeJS.Signals | null] {
  const termsig = status & 0x7f;
  if (!termsig) return [(status >> 8) & 0xff, null];
  return [null, (Object.entries(constants.signals).find(([, n]) => n === termsig)?.[0] ?? null) as NodeJS.Signals | null];
}

function str(text: string): Buffer {
  const bytes = Buffer.from(text);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function strings(buffer: Buffer, offset: number, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = buffer.readUInt32BE(offset);
    out.push(buffer.toString('utf8', offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return out;
}

const helper = new SpawnHelper();

/**
 * Runs a command through the helper and collects its output; resolves once it has exited
 * and closed its output (as Node's 'close'). Rejects with HelperSpawnError when it could
 * not be started, or a plain Error when the helper itself failed. `undefined` when perl is
 * not there: the caller spawns the child itself.
 */
export function runViaHelper(request: HelperRequest): Promise<HelperResult> | undefined {
  return startViaHelper(request)?.result;
}

/**
 * Whether the helper makes its own operations (HelperRequest.builtin) here: it runs, and
 * the syscall numbers of this arch are known. Otherwise callers run the host tools.
 */
export function helperOperationsAvailable(): boolean {
  return !helper.unavailable && process.env.BERTH_SPAWN_HELPER !== '0' && SYSCALLS[process.arch] !== undefined;
}

/** As runViaHelper, for a child that may outlive its output's reader (release it then). */
export function startViaHelper(request: HelperRequest): HelperChild | undefined {
  if (helper.unavailable || process.env.BERTH_SPAWN_HELPER === '0') return undefined;
  return helper.start(request);
}
