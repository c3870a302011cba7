// Manifests, indexes and image configs as berth reads them, and the choice of the
// platform manifest of an index for this machine.
import { BerthError, invalidArgument, failedPrecondition } from '../errors.js';
import type { ImageLayer } from './image-store.js';
import { layerCompression } from './media-types.js';
import { chainIds } from './snapshot-store.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ManifestDoc {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
}

/** The runtime part of an image config: what a container of the image starts with. */
export interface ImageRuntimeConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
}

export interface ImageConfigDoc {
  architecture?: string;
  os?: string;
  config?: ImageRuntimeConfig;
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** The layers of a manifest with their diff and chain IDs, checked against the config. */
export function imageLayers(manifest: ManifestDoc, configBytes: Buffer, name: string): { layers: ImageLayer[]; configDoc: ImageConfigDoc } {
  if (!Array.isArray(manifest.layers)) throw invalidArgument(`${name}: manifest has no layers`);
  for (const layer of manifest.layers) {
    if (!layerCompression(layer.mediaType)) {
      throw failedPrecondition(`${name}: layer ${layer.digest} has media type ${layer.mediaType}, which berth cannot unpack`);
    }
  }
  const configDoc = parseJson<ImageConfigDoc>(configBytes, 'image config');
  const diffIds = configDoc.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw invalidArgument(`${name}: the config lists ${diffIds.length} layers, the manifest ${manifest.layers.length}`);
  }
  const chains = chainIds(diffIds);
  const layers = manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: diffIds[i]!, chainId: chains[i]! }));
  return { layers, configDoc };
}

/** OCI architecture names for Node's process.arch. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch, variant: process.arch === 'arm64' ? 'v8' : undefined };
}

export function choosePlatform(manifests: Descriptor[], name: string): Descriptor {
  const host = hostPlatform();
  const candidates = manifests.filter((m) => m.platform?.os === host.os && m.platform?.architecture === host.architecture);
  const exact = candidates.find((m) => (m.platform?.variant ?? host.variant) === host.variant);
  const chosen = exact ?? candidates[0];
  if (!chosen) {
    const offered = manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? `/${m.platform.variant}` : ''}`).join(', ');
    throw new BerthError('NotFound', `${name}: no image for ${host.os}/${host.architecture} in its index (it has: ${offered || 'nothing'})`);
  }
  return chosen;
}

export function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw invalidArgument(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}
