// crictl's --max-retries: before the first call, the runtime's unix socket is connected
// to, and a failed connection is tried again with crictl's back-off (500 ms, doubling, at
// most 5 s). berthctl's gRPC channel connects lazily, so this probe is where the retries
// happen; once it gives up, the call itself fails with the runtime's usual error.
import { createConnection } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Whether a unix socket accepts a connection now. */
function reachable(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err) => resolve(err.message));
  });
}

/**
 * Waits until `endpoint` (unix://PATH) accepts connections, trying `maxRetries` times
 * more after a failure (negative: forever); `debug` hears each failed attempt.
 */
export async function waitForEndpoint(endpoint: string, maxRetries: number, debug?: (line: string) => void): Promise<void> {
  const path = endpoint.replace(/^unix:\/\//, '');
  let failure = await reachable(path);
  let delay = 500;
  for (let attempt = 0; failure !== undefined && (maxRetries < 0 || attempt < maxRetries); attempt++) {
    debug?.(`Connection attempt ${attempt + 1}${maxRetries > 0 ? `/${maxRetries}` : ''} failed: ${failure}, retrying in ${delay}ms`);
    await sleep(delay);
    failure = await reachable(path);
    delay = Math.min(delay * 2, 5000);
  }
}
