// ImageFsInfo: bytes and inodes of berth's image store (blobs and unpacked layers).
import type { ImageService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import type { ImageManager } from '../image/image-manager.js';

export function imageFsInfoHandler(images: ImageManager): UnaryHandler<typeof ImageService.method.imageFsInfo> {
  return async () => {
    const usage = await images.fsUsage();
    return {
      imageFilesystems: [
        {
          timestamp: BigInt(Date.now()) * 1_000_000n,
          fsId: { mountpoint: usage.mountpoint },
          usedBytes: { value: BigInt(usage.bytes) },
          inodesUsed: { value: BigInt(usage.inodes) },
        },
      ],
    };
  };
}
