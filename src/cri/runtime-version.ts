// Version: who berth is and which CRI API it serves. The kubelet asks every few seconds;
// the answer never changes, so it is encoded once.
import { create, toBinary } from '@bufbuild/protobuf';
import { VersionResponseSchema, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import { withEncoding, type UnaryHandler } from '../server/grpc-service.js';
import { BERTH_VERSION, KUBELET_API_VERSION, RUNTIME_API_VERSION, RUNTIME_NAME } from '../version.js';

const fields = Object.freeze({
  version: KUBELET_API_VERSION,
  runtimeName: RUNTIME_NAME,
  runtimeVersion: BERTH_VERSION,
  runtimeApiVersion: RUNTIME_API_VERSION,
});
const answer = Object.freeze(withEncoding({ ...fields }, toBinary(VersionResponseSchema, create(VersionResponseSchema, fields))));

export const version: UnaryHandler<typeof RuntimeService.method.version> = async () => answer;
