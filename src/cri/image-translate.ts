// Image records to CRI Image messages, and CRI AuthConfig to registry credentials.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { AuthConfig, ImageSchema } from '../gen/runtime/v1/api_pb.js';
import { invalidArgument } from '../errors.js';
import type { ImageRecord } from '../image/image-store.js';
import type { RegistryCredentials } from '../image/registry-client.js';

/** uid when the image's USER is numeric, else username (as containerd reports them). */
export function imageUser(user: string): { uid?: bigint; username: string } {
  const name = user.split(':')[0] ?? '';
  if (name === '') return { username: '' };
  if (/^\d+$/.test(name)) return { uid: BigInt(name), username: '' };
  return { username: name };
}

export function toCriImage(image: ImageRecord, pinned: boolean): MessageInitShape<typeof ImageSchema> {
  const user = imageUser(image.user);
  return {
    id: image.id,
    repoTags: image.repoTags,
    repoDigests: image.repoDigests,
    size: BigInt(image.size),
    uid: user.uid !== undefined ? { value: user.uid } : undefined,
    username: user.username,
    spec: { image: image.id, annotations: image.annotations },
    pinned,
  };
}

export function credentialsFromAuth(auth: AuthConfig | undefined): RegistryCredentials {
  if (!auth) return {};
  const credentials: RegistryCredentials = {};
  if (auth.username) {
    credentials.username = auth.username;
    credentials.password = auth.password;
  } else if (auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw invalidArgument('AuthConfig.auth must be base64 of "username:password"');
    credentials.username = decoded.slice(0, colon);
    credentials.password = decoded.slice(colon + 1);
  }
  if (auth.identityToken) credentials.identityToken = auth.identityToken;
  if (auth.registryToken) credentials.registryToken = auth.registryToken;
  return credentials;
}
