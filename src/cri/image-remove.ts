// RemoveImage: by id, tag or digest; removing an absent image succeeds (idempotent).
import type { ImageService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';

export function removeImageHandler(images: ImageManager): UnaryHandler<typeof ImageService.method.removeImage> {
  return async (request) => {
    const name = request.image?.image ?? '';
    if (name === '') throw invalidArgument('RemoveImage: image.image is required');
    await images.remove(name);
    return {};
  };
}
