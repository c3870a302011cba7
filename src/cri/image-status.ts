// ImageStatus and ListImages.
import type { ImageService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';
import { toCriImage } from './image-translate.js';

export function imageStatusHandler(images: ImageManager): UnaryHandler<typeof ImageService.method.imageStatus> {
  return async (request) => {
    const name = request.image?.image ?? '';
    if (name === '') throw invalidArgument('ImageStatus: image.image is required');
    const image = images.find(name);
    // An absent image is a nil image, not an error: that is how the kubelet asks "do I have it?".
    if (!image) return {};
    const info: Record<string, string> = {};
    if (request.verbose) {
      const config = await images.configDocument(image);
      info.info = JSON.stringify({
        id: image.id,
        manifestDigest: image.manifestDigest,
        indexDigest: image.indexDigest,
        layers: image.layers,
        createdAt: image.createdAt,
        imageSpec: config,
      });
    }
    return { image: toCriImage(image, images.isPinned(image)), info };
  };
}

export function listImagesHandler(images: ImageManager): UnaryHandler<typeof ImageService.method.listImages> {
  return async (request) => {
    const wanted = request.filter?.image?.image;
    const list = wanted ? [images.find(wanted)].filter((i) => i !== undefined) : images.list();
    return { images: list.map((image) => toCriImage(image, images.isPinned(image))) };
  };
}
