// CheckpointContainer and restore-from-archive: the request's shape and the container's
// state are checked, then CRIU must work on this host. Where `criu check` fails (Debian's
// criu 3.17.1 on kernel 6.18 does), both answer UNIMPLEMENTED with what criu said.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcStatus, type GrpcStatusCode } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { tempDir } from './helpers/tmp.js';

const rejectsWith = (code: GrpcStatusCode, message: RegExp) => (err: GrpcCallError) => {
  assert.equal(err.code, code, err.message);
  assert.match(err.message, message);
  return true;
};

test('CheckpointContainer checks its request, then answers what CRIU says on this host', { skip: containerTestSkip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t);
  const dir = await tempDir(t, 'checkpoint-');
  const archive = join(dir, 'counter.tar');
  const check = spawnSync('criu', ['check'], { encoding: 'utf8' });
  const criuWorks = check.status === 0;
  console.log(`criu check: ${check.error ? check.error.message : `exit ${check.status}: ${(check.stderr + check.stdout).trim()}`}`);

  await assert.rejects(runtime.checkpointContainer({ containerId: 'nope', location: archive }), rejectsWith(GrpcStatus.NOT_FOUND, /nope/));
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'counter' }, image: { image }, command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'] } });
  await assert.rejects(runtime.checkpointContainer({ containerId, location: archive }), rejectsWith(GrpcStatus.FAILED_PRECONDITION, /created: only a running container/));
  await runtime.startContainer({ containerId });
  await assert.rejects(runtime.checkpointContainer({ containerId, location: '' }), rejectsWith(GrpcStatus.INVALID_ARGUMENT, /location/));
  await assert.rejects(runtime.checkpointContainer({ containerId, location: 'rel.tar' }), rejectsWith(GrpcStatus.INVALID_ARGUMENT, /absolute/));

  const firstLine = (check.error ? 'not installed' : (check.stderr + check.stdout).trim().split('\n')[0]!).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const expected = criuWorks ? /not implemented by berth yet; criu check passes/ : new RegExp(`needs CRIU, which does not work on this host: .*${firstLine}`);
  await assert.rejects(runtime.checkpointContainer({ containerId, location: archive }), rejectsWith(GrpcStatus.UNIMPLEMENTED, expected));
  // The container is untouched and still counting.
  const r = await runtime.execSync({ containerId, cmd: ['cat', '/tmp/count'], timeout: 10n });
  assert.equal(r.exitCode, 0);
  assert.ok(Number(Buffer.from(r.stdout).toString()) > 0);

  // Restore: CreateContainer with a checkpoint archive as its image (CRI-O's way).
  await writeFile(archive, 'not really a checkpoint');
  await assert.rejects(
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'restored' }, image: { image: archive } } }),
    rejectsWith(GrpcStatus.UNIMPLEMENTED, criuWorks ? /restoring from checkpoint archive/ : new RegExp(`restoring from checkpoint archive ${archive.replace(/[.]/g, '\\.')} needs CRIU`)),
  );
  // The name was not reserved by the refusal.
  assert.ok((await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'restored' }, image: { image }, command: ['true'] } })).containerId);
});
