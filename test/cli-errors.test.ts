// berthctl's error messages are crictl's: "rpc error: code = X desc = Y" with grpc-go's
// words for a missing socket, a refused connection and a deadline (berth's gRPC client
// words them so; grpc-js's internals, "LB pick", "Resolution note:", never appear).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import { GrpcCallError } from '../src/server/grpc-client.js';
import { describeCallError } from '../src/cli/runtime-client.js';
import { runBerthctl } from './helpers/berthd.js';
import { tempDir } from './helpers/tmp.js';

test("a call's status becomes crictl's line: grpc-go's code names, the details as they came", () => {
  assert.equal(
    describeCallError('listing containers', new GrpcCallError(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded')).message,
    'listing containers: rpc error: code = DeadlineExceeded desc = context deadline exceeded',
  );
  assert.equal(describeCallError('x', new GrpcCallError(GrpcStatus.CANCELLED, 'context canceled')).message, 'x: rpc error: code = Canceled desc = context canceled');
  assert.equal(describeCallError('x', { code: GrpcStatus.NOT_FOUND, details: 'container "x" not found' }).message, 'x: rpc error: code = NotFound desc = container "x" not found');
  assert.equal(describeCallError('x', { code: 42, details: 'odd' }).message, 'x: rpc error: code = Code(42) desc = odd');
  assert.equal(describeCallError('x', new Error('plain')).message, 'x: plain');
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
