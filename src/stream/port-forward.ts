// Port forwarding over SPDY (protocol portforward.k8s.io): for every connection the
// client opens an error stream and a data stream, both naming the port and a
// requestID; the pair is carried to the pod's port. Errors go to the error stream as
// text, as the kubelet writes them.
import type { StreamBackends } from './backends.js';
import { endWritable } from './remote-command.js';
import type { SpdySession, SpdyStream } from './spdy.js';

export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io';
const PAIR_TIMEOUT_MS = 30_000;

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

export function servePortForwardSpdy(session: SpdySession, podId: string, backends: StreamBackends): void {
  const pairs = new Map<string, Pair>();
  const abort = new AbortController();
  session.on('error', () => undefined);
  session.on('close', () => {
    abort.abort();
    for (const pair of pairs.values()) clearTimeout(pair.timer);
  });
  session.on('stream', (stream) => {
    stream.on('error', () => undefined);
    const type = stream.headers['streamtype'];
    const requestId = stream.headers['requestid'] ?? '';
    const portText = stream.headers['port'] ?? '';
    const port = Number(portText);
    if ((type !== 'data' && type !== 'error') || !/^\d+$/.test(portText) || port < 1 || port > 65535) {
      stream.reply();
      stream.reset();
      return;
    }
    stream.reply();
    let pair = pairs.get(requestId);
    if (!pair) {
      pair = { timer: setTimeout(() => {
        pairs.delete(requestId);
        pair?.data?.reset();
        pair?.error?.reset();
      }, PAIR_TIMEOUT_MS) };
      pairs.set(requestId, pair);
    }
    if (pair[type]) {
      stream.reset();
      return;
    }
    pair[type] = stream;
    if (!pair.data || !pair.error) return;
    clearTimeout(pair.timer);
    pairs.delete(requestId);
    const { data, error } = pair;
    error.resume();
    void (async () => {
      try {
        await backends.portForward(podId, port, data, abort.signal);
      } catch (err) {
        if (!session.closed) error.write(`error forwarding port ${port} to pod ${podId}: ${(err as Error).message}`);
      }
      await Promise.all([endWritable(data), endWritable(error)]);
    })();
  });
}
