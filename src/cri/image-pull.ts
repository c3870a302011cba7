// PullImage: resolve, download, verify, unpack, record; answers the image id, which the
// kubelet stores as the image ref of its containers.
import type { ImageService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';
import { credentialsFromAuth } from './image-translate.js';

export function pullImageHandler(images: ImageManager): UnaryHandler<typeof ImageService.method.pullImage> {
  return async (request) => {
    const name = request.image?.image ?? '';
    if (name === '') throw invalidArgument('PullImage: image.image is required');
    // The pull is not tied to this call: if the kubelet gives up and retries, the retry
    // joins the pull still running instead of starting over.
    const image = await images.pull(name, credentialsFromAuth(request.auth));
    return { imageRef: image.id };
  };
}
