// The RuntimeService and ImageService handlers berthd serves. Each RPC family lives in
// its own file; methods not listed here answer UNIMPLEMENTED through the wrapper.
import type { RuntimeService, ImageService } from '../gen/runtime/v1/api_pb.js';
import type { MethodsOf, ServiceHandlers } from '../rpc/grpc-service.js';
import { version } from './runtime-version.js';
import { statusHandler, type StatusDeps } from './runtime-status.js';

export type CriDeps = StatusDeps;

export function runtimeHandlers(deps: CriDeps): ServiceHandlers<MethodsOf<typeof RuntimeService>> {
  return {
    version,
    status: statusHandler(deps),
  };
}

export function imageHandlers(_deps: CriDeps): ServiceHandlers<MethodsOf<typeof ImageService>> {
  return {};
}
