// CSI Identity: who berth-csi is, what it offers, and whether it is ready.
import { access, constants } from 'node:fs/promises';
import { PluginCapability_Service_Type as Service, PluginCapability_VolumeExpansion_Type as Expansion, type Identity } from '../gen/csi/v1/csi_pb.js';
import type { MethodsOf, ServiceHandlers } from '../server/grpc-service.js';
import { BERTH_VERSION } from '../version.js';
import type { VolumeManager } from '../volume/volume-manager.js';
import { DRIVER_NAME } from './translate.js';

export function identityHandlers(volumes: VolumeManager): ServiceHandlers<MethodsOf<typeof Identity>> {
  return {
    async getPluginInfo() {
      return { name: DRIVER_NAME, vendorVersion: BERTH_VERSION };
    },
    async getPluginCapabilities() {
      return {
        capabilities: [
          { type: { case: 'service', value: { type: Service.CONTROLLER_SERVICE } } },
          { type: { case: 'service', value: { type: Service.VOLUME_ACCESSIBILITY_CONSTRAINTS } } },
          { type: { case: 'volumeExpansion', value: { type: Expansion.ONLINE } } },
        ],
      };
    },
    async probe() {
      // Ready when the state dir can be written: every volume lives there.
      const ready = await access(volumes.stateDir, constants.W_OK).then(
        () => true,
        () => false,
      );
      return { ready };
    },
  };
}
