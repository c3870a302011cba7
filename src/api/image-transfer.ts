// berth.v1.ImageTransfer: import and export image archives (no CRI RPC does this).
import { isAbsolute } from 'node:path';
import type { ImageTransfer } from '../gen/berth/v1/berth_pb.js';
import type { MethodsOf, ServiceHandlers } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';

export function imageTransferHandlers(images: ImageManager): ServiceHandlers<MethodsOf<typeof ImageTransfer>> {
  return {
    importImages: async (request) => {
      if (!isAbsolute(request.archivePath)) throw invalidArgument(`archive_path must be an absolute path, not "${request.archivePath}"`);
      const records = await images.importArchive(request.archivePath, request.names);
      return { images: records.map((r) => ({ id: r.id, repoTags: r.repoTags })) };
    },
    exportImages: async (request) => {
      if (!isAbsolute(request.archivePath)) throw invalidArgument(`archive_path must be an absolute path, not "${request.archivePath}"`);
      if (request.images.length === 0) throw invalidArgument('name at least one image to export');
      return { size: BigInt(await images.exportArchive(request.images, request.archivePath)) };
    },
  };
}
