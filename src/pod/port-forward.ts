// One port-forward connection: localhost:PORT inside the pod's network namespace.
// Node cannot enter a namespace, so the connection is made by a short Perl relay
// (Perl and its Socket module come with every Debian system) started under
// `nsenter --net=<the pod's pinned netns file>`; the relay copies between its stdio
// and the socket, passing each side's end on as a half-close. Pods on the host's
// network get the same relay without nsenter.
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { internal } from '../errors.js';

const RELAY = String.raw`
use strict; use warnings; use Socket;
my $port = shift @ARGV;
socket(my $s, PF_INET, SOCK_STREAM, getprotobyname('tcp')) or die "socket: $!\n";
connect($s, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or die "cannot connect to 127.0.0.1:$port: $!\n";
my ($in_open, $out_open) = (1, 1);
while ($out_open) {
  my $rin = '';
  vec($rin, fileno($s), 1) = 1;
  vec($rin, fileno(STDIN), 1) = 1 if $in_open;
  my $n = select(my $rout = $rin, undef, undef, undef);
  next if $n < 0 && $!{EINTR};
  die "select: $!\n" if $n < 0;
  if (vec($rout, fileno($s), 1)) {
    my $got = sysread($s, my $buf, 65536);
    next if !defined($got) && $!{EINTR};
    if (!$got) { $out_open = 0; last; }
    while (length $buf) { my $w = syswrite(STDOUT, $buf); die "stdout: $!\n" unless defined $w; substr($buf, 0, $w) = ''; }
  }
  if ($in_open && vec($rout, fileno(STDIN), 1)) {
    my $got = sysread(STDIN, my $buf, 65536);
    next if !defined($got) && $!{EINTR};
    if (!$got) { shutdown($s, 1); $in_open = 0; next; }
    while (length $buf) { my $w = syswrite($s, $buf); die "send: $!\n" unless defined $w; substr($buf, 0, $w) = ''; }
  }
}
`;

export async function forwardPort(netns: string | undefined, port: number, stream: Duplex, signal: AbortSignal): Promise<void> {
  const [command, args] = netns ? ['nsenter', [`--net=${netns}`, 'perl', '-e', RELAY, String(port)]] : ['perl', ['-e', RELAY, String(port)]];
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined);
  stream.pipe(child.stdin);
  child.stdout.pipe(stream, { end: false });
  const onAbort = () => child.kill('SIGKILL');
  signal.addEventListener('abort', onAbort);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', (err) => reject(internal(`cannot run ${command}: ${err.message}`)));
      child.once('close', (c) => resolve(c));
    });
    if (code !== 0 && !signal.aborted) throw internal(stderr.trim() || `the relay to port ${port} failed (exit ${code})`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    stream.unpipe(child.stdin);
  }
}
