// berthctl's error messages are crictl's: grpc-js's internals (the phases of a call that
// ran out of time, "LB pick", a trailing "Resolution note:") never reach the user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { clientDetails, describeCallError } from '../src/cli/runtime-client.js';
import { runBerthctl } from './helpers/berthd.js';
import { tempDir } from './helpers/tmp.js';

test("client-side grpc-js details become grpc-go words; a server's details pass through", () => {
  assert.equal(
    clientDetails(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded after 1.001s,name resolution: 0.004s,metadata filters: 0.001s,Waiting for LB pick'),
    'context deadline exceeded',
  );
  assert.equal(
    clientDetails(grpc.status.UNAVAILABLE, 'No connection established. Last error: Error: connect ENOENT /run/x.sock. Resolution note: '),
    'connection error: dial unix /run/x.sock: connect: no such file or directory',
  );
  assert.equal(
    clientDetails(grpc.status.UNAVAILABLE, 'No connection established. Last error: Error: connect ECONNREFUSED /tmp/s. Resolution note: something'),
    'connection error: dial unix /tmp/s: connect: connection refused',
  );
  assert.equal(clientDetails(grpc.status.UNAVAILABLE, 'No connection established. Last error: Error: read ECONNRESET. Resolution note: '), 'connection error: read ECONNRESET');
  // What berthd itself says is kept, DeadlineExceeded from ExecSync's timeout included.
  assert.equal(clientDetails(grpc.status.UNAVAILABLE, 'berthd is starting (recovering state); try again shortly'), 'berthd is starting (recovering state); try again shortly');
  assert.equal(clientDetails(grpc.status.DEADLINE_EXCEEDED, 'command timed out after 2s'), 'command timed out after 2s');
  assert.equal(clientDetails(grpc.status.NOT_FOUND, 'container "x" not found'), 'container "x" not found');
  assert.equal(
    describeCallError('listing containers', { code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded after 2s,LB pick: 2s' }).message,
    'listing containers: rpc error: code = DeadlineExceeded desc = context deadline exceeded',
  );
});

test("berthctl against no socket, a file that is not one, and a socket that never answers: crictl's words", async (t) => {
  const dir = await tempDir(t, 'cli-errors-');
  const missing = await runBerthctl(['-r', `unix://${join(dir, 'none.sock')}`, 'version']);
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr.trim(),
    `berthctl: getting the runtime version: rpc error: code = Unavailable desc = connection error: dial unix ${join(dir, 'none.sock')}: connect: no such file or directory`,
  );
  await writeFile(join(dir, 'file'), '');
  const notSocket = await runBerthctl(['-r', `unix://${join(dir, 'file')}`, 'ps']);
  assert.equal(notSocket.code, 1);
  assert.match(notSocket.stderr, /^berthctl: listing containers: rpc error: code = Unavailable desc = connection error: dial unix \S+\/file: connect: connection refused\n$/);

  const silent = createServer(() => undefined);
  const path = join(dir, 'silent.sock');
  await new Promise<void>((resolve) => silent.listen(path, resolve));
  t.after(() => silent.close());
  const hung = await runBerthctl(['-r', `unix://${path}`, '--timeout', '1s', 'version']);
  assert.equal(hung.code, 1);
  assert.equal(hung.stderr.trim(), 'berthctl: getting the runtime version: rpc error: code = DeadlineExceeded desc = context deadline exceeded');
  for (const out of [missing.stderr, notSocket.stderr, hung.stderr]) assert.doesNotMatch(out, /Resolution note|LB pick|name resolution/);
});
