// CSI Controller: volumes and snapshots of this node's state dir. berth-csi's controller
// and node are one process on one node, so every volume is accessible from this node only.
import { ControllerServiceCapability_RPC_Type as Rpc, type Controller } from '../gen/csi/v1/csi_pb.js';
import type { MethodsOf, ServiceHandlers } from '../server/grpc-service.js';
import { invalidArgument, resourceExhausted } from '../errors.js';
import type { VolumeManager } from '../volume/volume-manager.js';
import { TOPOLOGY_KEY, capacityOf, contentSourceOf, required, snapshotMessage, unsupported, volumeMessage, volumeUse } from './translate.js';

const CAPABILITIES = [
  Rpc.CREATE_DELETE_VOLUME,
  Rpc.LIST_VOLUMES,
  Rpc.GET_CAPACITY,
  Rpc.CREATE_DELETE_SNAPSHOT,
  Rpc.LIST_SNAPSHOTS,
  Rpc.CLONE_VOLUME,
  Rpc.EXPAND_VOLUME,
  Rpc.GET_VOLUME,
  Rpc.GET_SNAPSHOT,
  Rpc.SINGLE_NODE_MULTI_WRITER,
];

export function controllerHandlers(volumes: VolumeManager, nodeId: string): ServiceHandlers<MethodsOf<typeof Controller>> {
  const onThisNode = (segments: Record<string, string>) => segments[TOPOLOGY_KEY] === undefined || segments[TOPOLOGY_KEY] === nodeId;
  return {
    async createVolume(request) {
      const name = required(request.name, 'name');
      if (request.volumeCapabilities.length === 0) throw invalidArgument('volume_capabilities is required');
      const uses = request.volumeCapabilities.map((cap, i) => volumeUse(cap, `volume_capabilities[${i}]`));
      const requisite = request.accessibilityRequirements?.requisite ?? [];
      if (requisite.length > 0 && !requisite.some((t) => onThisNode(t.segments))) {
        throw resourceExhausted(`berth-csi can only make volumes on node ${nodeId}, which the requisite topology leaves out`);
      }
      const volume = await volumes.createVolume({
        name,
        ...capacityOf(request.capacityRange),
        uses,
        parameters: request.parameters,
        source: contentSourceOf(request.volumeContentSource),
      });
      return { volume: volumeMessage(volume, nodeId) };
    },

    async deleteVolume(request) {
      await volumes.deleteVolume(required(request.volumeId, 'volume_id'));
      return {};
    },

    async validateVolumeCapabilities(request) {
      const id = required(request.volumeId, 'volume_id');
      if (request.volumeCapabilities.length === 0) throw invalidArgument('volume_capabilities is required');
      volumes.getVolume(id);
      const problems = request.volumeCapabilities.map(unsupported).filter((p): p is string => p !== undefined);
      if (problems.length > 0) return { message: problems.join('; ') };
      return {
        confirmed: {
          volumeContext: request.volumeContext,
          volumeCapabilities: request.volumeCapabilities,
          parameters: request.parameters,
          mutableParameters: request.mutableParameters,
        },
      };
    },

    async listVolumes(request) {
      const page = volumes.listVolumes(request.maxEntries, request.startingToken);
      return { entries: page.entries.map((v) => ({ volume: volumeMessage(v, nodeId) })), nextToken: page.nextToken };
    },

    async controllerGetVolume(request) {
      const volume = volumes.getVolume(required(request.volumeId, 'volume_id'));
      return {
        volume: volumeMessage(volume, nodeId),
        status: { publishedNodeIds: Object.keys(volume.publishes).length > 0 ? [nodeId] : [] },
      };
    },

    async getCapacity(request) {
      if (request.volumeCapabilities.some((cap) => unsupported(cap) !== undefined)) return { availableCapacity: 0n };
      if (request.accessibleTopology && !onThisNode(request.accessibleTopology.segments)) return { availableCapacity: 0n };
      return { availableCapacity: BigInt(await volumes.availableBytes()) };
    },

    async controllerGetCapabilities() {
      return { capabilities: CAPABILITIES.map((type) => ({ type: { case: 'rpc', value: { type } } })) };
    },

    async createSnapshot(request) {
      const sourceVolumeId = required(request.sourceVolumeId, 'source_volume_id');
      const name = required(request.name, 'name');
      return { snapshot: snapshotMessage(await volumes.createSnapshot(name, sourceVolumeId)) };
    },

    async deleteSnapshot(request) {
      await volumes.deleteSnapshot(required(request.snapshotId, 'snapshot_id'));
      return {};
    },

    async listSnapshots(request) {
      const page = volumes.listSnapshots(
        { snapshotId: request.snapshotId || undefined, sourceVolumeId: request.sourceVolumeId || undefined },
        request.maxEntries,
        request.startingToken,
      );
      return { entries: page.entries.map((s) => ({ snapshot: snapshotMessage(s) })), nextToken: page.nextToken };
    },

    async getSnapshot(request) {
      return { snapshot: snapshotMessage(volumes.getSnapshot(required(request.snapshotId, 'snapshot_id'))) };
    },

    async controllerExpandVolume(request) {
      const id = required(request.volumeId, 'volume_id');
      const range = required(request.capacityRange, 'capacity_range');
      if (request.volumeCapability) volumeUse(request.volumeCapability);
      const { requiredBytes, limitBytes } = capacityOf(range);
      const volume = await volumes.expandVolume(id, requiredBytes, limitBytes);
      return { capacityBytes: BigInt(volume.capacityBytes), nodeExpansionRequired: true };
    },
  };
}

