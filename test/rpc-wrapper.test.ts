// The one RPC wrapper: the start-up gate, and the mapping of berth's errors to gRPC codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { pino } from 'pino';
import { RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { grpcServiceDefinition } from '../src/server/grpc-service.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { implementService } from '../src/server/rpc-wrapper.js';
import { StartupGate } from '../src/server/startup-gate.js';
import { BerthError, notFound } from '../src/errors.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';

test('calls before recovery finishes get UNAVAILABLE; errors map to their gRPC codes', async (t) => {
  const dir = await tempDir(t);
  const gate = new StartupGate();
  gate.setPhase('recovering state');
  const calls: string[] = [];
  const server = new grpc.Server();
  server.addService(
    grpcServiceDefinition(RuntimeService),
    implementService(
      RuntimeService,
      {
        version: async () => ({ runtimeName: 'test' }),
        containerStatus: async (req) => {
          throw notFound('container', req.containerId);
        },
        podSandboxStatus: async () => {
          throw new BerthError('FailedPrecondition', 'pod is stopping');
        },
        listContainers: async () => {
          throw new TypeError('boom');
        },
      },
      { gate, log: pino({ level: 'silent' }), onCall: (outcome) => calls.push(`${outcome.service}/${outcome.method} ${outcome.code}`) },
    ),
  );
  const socket = join(dir, 's.sock');
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  cleanup(t).after(() => server.forceShutdown());
  const channel = openChannel(`unix://${socket}`);
  cleanup(t).after(() => channel.close());
  const client = serviceClient(RuntimeService, channel);

  await assert.rejects(client.version({}), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.UNAVAILABLE);
    assert.match(err.details, /starting \(recovering state\)/);
    return true;
  });
  gate.open();
  assert.equal((await client.version({})).runtimeName, 'test');
  await assert.rejects(client.containerStatus({ containerId: 'abc' }), { code: GrpcStatus.NOT_FOUND, details: 'container "abc" not found' });
  await assert.rejects(client.podSandboxStatus({}), { code: GrpcStatus.FAILED_PRECONDITION, details: 'pod is stopping' });
  await assert.rejects(client.listContainers({}), { code: GrpcStatus.INTERNAL, details: 'boom' });
  await assert.rejects(client.removeContainer({}), { code: GrpcStatus.UNIMPLEMENTED });
  // The metrics hook sees every call that passed the gate, once, with its outcome.
  assert.deepEqual(calls, [
    'runtime.v1.RuntimeService/Version OK',
    'runtime.v1.RuntimeService/ContainerStatus NotFound',
    'runtime.v1.RuntimeService/PodSandboxStatus FailedPrecondition',
    'runtime.v1.RuntimeService/ListContainers Internal',
    'runtime.v1.RuntimeService/RemoveContainer Unimplemented',
  ]);
});
