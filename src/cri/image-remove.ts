// RemoveImage: by id, tag or digest; removing an absent image succeeds (idempotent). An
// image mounted as an image volume of a container is kept (FailedPrecondition) until that
// container is removed: its snapshots are the volume's layers.
import type { ImageService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { failedPrecondition, invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';

/** The container whose image volume uses an image, if any. */
export type ImageVolumeUser = (imageId: string) => string | undefined;

export function removeImageHandler(images: ImageManager, volumeUser: ImageVolumeUser = () => undefined): UnaryHandler<typeof ImageService.method.removeImage> {
  return async (request) => {
    const name = request.image?.image ?? '';
    if (name === '') throw invalidArgument('RemoveImage: image.image is required');
    const image = images.find(name);
    const user = image && volumeUser(image.id);
    if (user) throw failedPrecondition(`image ${name} is in use by an image volume of container ${user}; remove the container first`);
    await images.remove(name);
    return {};
  };
}
