// ImageStatus and ListImages.
import { ImageSchema, type ImageService } from '../gen/runtime/v1/api_pb.js';
import { withEncoding, type UnaryHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';
import { toCriImage } from './image-translate.js';
import type { ImageRecord } from '../image/image-store.js';
import { EncodedFields, joinFields } from './encoded-answers.js';

/**
 * Image records are replaced, never changed, when their names change (image-store.ts):
 * the record itself and whether it is pinned are all an answer depends on.
 */
function encodedImages(images: ImageManager): (image: ImageRecord) => Uint8Array {
  const fields = new EncodedFields<ImageRecord, typeof ImageSchema>(ImageSchema, 1);
  return (image) => {
    const pinned = images.isPinned(image);
    return fields.of(image, [pinned], () => toCriImage(image, pinned));
  };
}

export function imageStatusHandler(images: ImageManager): UnaryHandler<typeof ImageService.method.imageStatus> {
  const encoded = encodedImages(images);
  return async (request) => {
    const name = request.image?.image ?? '';
    if (name === '') throw invalidArgument('ImageStatus: image.image is required');
    const image = images.find(name);
    // An absent image is a nil image, not an error: that is how the kubelet asks "do I have it?".
    if (!image) return {};
    // ImageStatusResponse's field 1 is the image, as ListImagesResponse's items.
    if (!request.verbose) return withEncoding({ get image() { return toCriImage(image, images.isPinned(image)); }, info: {} }, encoded(image));
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
  const encoded = encodedImages(images);
  return async (request) => {
    const wanted = request.filter?.image?.image;
    const list = wanted ? [images.find(wanted)].filter((i) => i !== undefined) : images.list();
    return withEncoding({ get images() { return list.map((image) => toCriImage(image, images.isPinned(image))); } }, joinFields(list.map(encoded)));
  };
}
