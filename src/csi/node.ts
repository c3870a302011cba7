// CSI Node: stage (loop-attach and mount), publish (bind mount), stats and expansion of
// this node's volumes.
import { NodeServiceCapability_RPC_Type as Rpc, VolumeUsage_Unit as Unit, type Node } from '../gen/csi/v1/csi_pb.js';
import type { MethodsOf, ServiceHandlers } from '../server/grpc-service.js';
import type { VolumeManager } from '../volume/volume-manager.js';
import { required, topology, volumeUse } from './translate.js';

const CAPABILITIES = [Rpc.STAGE_UNSTAGE_VOLUME, Rpc.GET_VOLUME_STATS, Rpc.EXPAND_VOLUME, Rpc.VOLUME_CONDITION, Rpc.SINGLE_NODE_MULTI_WRITER];

/** How many volumes the kubelet may schedule here: one loop device each. */
export const MAX_VOLUMES_PER_NODE = 256n;

export function nodeHandlers(volumes: VolumeManager, nodeId: string): ServiceHandlers<MethodsOf<typeof Node>> {
  return {
    async nodeStageVolume(request) {
      const id = required(request.volumeId, 'volume_id');
      const stagingPath = required(request.stagingTargetPath, 'staging_target_path');
      const use = volumeUse(request.volumeCapability);
      await volumes.stage(id, stagingPath, use);
      return {};
    },

    async nodeUnstageVolume(request) {
      const id = required(request.volumeId, 'volume_id');
      const stagingPath = required(request.stagingTargetPath, 'staging_target_path');
      await volumes.unstage(id, stagingPath);
      return {};
    },

    async nodePublishVolume(request) {
      const id = required(request.volumeId, 'volume_id');
      const stagingPath = required(request.stagingTargetPath, 'staging_target_path');
      const target = required(request.targetPath, 'target_path');
      const use = volumeUse(request.volumeCapability);
      await volumes.publish(id, stagingPath, target, use, request.readonly);
      return {};
    },

    async nodeUnpublishVolume(request) {
      const id = required(request.volumeId, 'volume_id');
      const target = required(request.targetPath, 'target_path');
      await volumes.unpublish(id, target);
      return {};
    },

    async nodeGetVolumeStats(request) {
      const id = required(request.volumeId, 'volume_id');
      const path = required(request.volumePath, 'volume_path');
      const stats = await volumes.stats(id, path);
      const usage = [{ unit: Unit.BYTES, total: BigInt(stats.bytes.total), available: BigInt(stats.bytes.available), used: BigInt(stats.bytes.used) }];
      if (stats.inodes) {
        usage.push({ unit: Unit.INODES, total: BigInt(stats.inodes.total), available: BigInt(stats.inodes.available), used: BigInt(stats.inodes.used) });
      }
      return { usage, volumeCondition: { abnormal: stats.abnormal, message: stats.message } };
    },

    async nodeExpandVolume(request) {
      const id = required(request.volumeId, 'volume_id');
      const path = required(request.volumePath, 'volume_path');
      if (request.volumeCapability) volumeUse(request.volumeCapability);
      return { capacityBytes: BigInt(await volumes.nodeExpand(id, path)) };
    },

    async nodeGetCapabilities() {
      return { capabilities: CAPABILITIES.map((type) => ({ type: { case: 'rpc', value: { type } } })) };
    },

    async nodeGetInfo() {
      return { nodeId, maxVolumesPerNode: MAX_VOLUMES_PER_NODE, accessibleTopology: topology(nodeId) };
    },
  };
}
