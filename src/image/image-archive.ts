// Image archives: the OCI image layout (oci-layout, index.json, blobs/sha256/…) and
// `docker save` output (manifest.json with Config and Layers paths, legacy or OCI-based).
// Reading streams the tar once, storing every file that could be a blob in the content
// store by its digest; writing produces one archive that both OCI tools and docker load.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { BerthError, invalidArgument } from '../errors.js';
import { fsyncDir, fsyncFile } from '../store/atomic-file.js';
import type { ContentStore } from './content-store.js';
import type { ImageRecord } from './image-store.js';
import { DOCKER_CONFIG, DOCKER_MANIFEST, INDEX_TYPES, OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import { choosePlatform, parseJson, type Descriptor, type ManifestDoc } from './manifest.js';
import { sha256Digest } from './content-store.js';
import { dirname } from 'node:path';

const BLOB_PATH = /^(?:\.\/)?blobs\/sha256\/([a-f0-9]{64})$/;
/** Small JSON files read into memory; anything else is stored as a blob. */
const METADATA_FILES = new Set(['index.json', 'manifest.json', 'oci-layout', 'repositories']);
const METADATA_LIMIT = 16 * 1024 * 1024;

export interface ImageArchive {
  path: string;
  metadata: Map<string, Buffer>;
  /** Archive path of every stored file → its digest and size. */
  files: Map<string, { digest: string; size: number }>;
}

export async function readImageArchive(path: string, content: ContentStore, lease: (digest: string) => void): Promise<ImageArchive> {
  const archive: ImageArchive = { path, metadata: new Map(), files: new Map() };
  const extract = tarStream.extract();
  const feeding = pipeline(createReadStream(path), extract).catch((err: Error) => {
    throw invalidArgument(`${path} is not a readable tar archive: ${err.message}`);
  });
  try {
    for await (const entry of extract) {
      const body = entry as unknown as Readable;
      const name = entry.header.name.replace(/^\.\//, '');
      if (entry.header.type !== 'file' && entry.header.type !== 'contiguous-file') {
        body.resume();
        continue;
      }
      const size = entry.header.size ?? 0;
      if (METADATA_FILES.has(name) && size <= METADATA_LIMIT) {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk as Buffer);
        archive.metadata.set(name, Buffer.concat(chunks));
        continue;
      }
      const blob = BLOB_PATH.exec(name);
      if (blob) {
        const digest = `sha256:${blob[1]}`;
        lease(digest);
        await content.ingest(digest, size, async () => ({ body, resumed: false }));
        body.resume(); // already stored: skip its bytes
        archive.files.set(name, { digest, size });
      } else {
        // docker save's legacy names (<id>.json, <id>/layer.tar): digest computed here.
        const stored = await content.ingestUnknown(body);
        lease(stored.digest);
        archive.files.set(name, stored);
      }
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    await feeding.catch(() => undefined);
    if (err instanceof BerthError) throw err;
    throw invalidArgument(`cannot import ${path}: ${(err as Error).message}`);
  }
  return archive;
}

export interface ArchiveImage {
  manifestDigest: string;
  /** Set when the manifest was made here (legacy docker save has none to store). */
  manifestBytes?: Buffer;
  names: string[];
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** The images an archive holds: from index.json (OCI) or manifest.json (docker save). */
export async function resolveArchiveImages(archive: ImageArchive, content: ContentStore): Promise<ArchiveImage[]> {
  const dockerEntries = archive.metadata.has('manifest.json')
    ? parseJson<DockerManifestEntry[]>(archive.metadata.get('manifest.json')!, 'manifest.json')
    : [];
  const namesByConfig = new Map<string, string[]>();
  for (const entry of dockerEntries) {
    const config = archive.files.get(entry.Config.replace(/^\.\//, ''));
    if (config) namesByConfig.set(config.digest, entry.RepoTags ?? []);
  }

  const index = archive.metadata.get('index.json');
  if (index) {
    const images: ArchiveImage[] = [];
    for (const descriptor of parseJson<ManifestDoc>(index, 'index.json').manifests ?? []) {
      const manifestDigest = await platformManifest(archive, content, descriptor);
      const manifest = parseJson<ManifestDoc>(await storedBlob(archive, content, manifestDigest), 'manifest');
      const names = namesByConfig.get(manifest.config?.digest ?? '') ?? namesFromAnnotations(descriptor.annotations ?? {});
      const existing = images.find((i) => i.manifestDigest === manifestDigest);
      if (existing) existing.names = [...new Set([...existing.names, ...names])];
      else images.push({ manifestDigest, names });
    }
    return images;
  }

  // Legacy docker save: no manifests inside, so make a Docker schema 2 one.
  return dockerEntries.map((entry) => {
    const config = requireFile(archive, entry.Config);
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, digest: config.digest, size: config.size },
      layers: entry.Layers.map((layer) => {
        const file = requireFile(archive, layer);
        return { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: file.digest, size: file.size };
      }),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    return { manifestDigest: sha256Digest(bytes), manifestBytes: bytes, names: entry.RepoTags ?? [] };
  });
}

/** A descriptor from index.json, down to this machine's manifest when it is an index. */
async function platformManifest(archive: ImageArchive, content: ContentStore, descriptor: Descriptor): Promise<string> {
  if (!INDEX_TYPES.includes(descriptor.mediaType)) return descriptor.digest;
  const nested = parseJson<ManifestDoc>(await storedBlob(archive, content, descriptor.digest), 'index');
  return platformManifest(archive, content, choosePlatform(nested.manifests ?? [], archive.path));
}

function namesFromAnnotations(annotations: Record<string, string>): string[] {
  const full = annotations['io.containerd.image.name'];
  if (full) return [full];
  const ref = annotations['org.opencontainers.image.ref.name'];
  // A bare tag ("1.0") names no repository; such an image gets names only from the caller.
  return ref && /[/:]/.test(ref) ? [ref] : [];
}

function requireFile(archive: ImageArchive, name: string): { digest: string; size: number } {
  const file = archive.files.get(name.replace(/^\.\//, ''));
  if (!file) throw invalidArgument(`${archive.path}: manifest.json names ${name}, which is not in the archive`);
  return file;
}

async function storedBlob(archive: ImageArchive, content: ContentStore, digest: string): Promise<Buffer> {
  if (!(await content.has(digest))) throw invalidArgument(`${archive.path}: blob ${digest} is referenced but not in the archive`);
  return content.read(digest);
}

/**
 * Writes images as an OCI image layout that also carries docker's manifest.json, so
 * both `docker load` and OCI tools read it. Written to a temp file, then renamed.
 */
export async function writeImageArchive(path: string, images: ImageRecord[], content: ContentStore): Promise<number> {
  const temp = `${path}.${process.pid}.partial`;
  const pack = tarStream.pack();
  const output = createWriteStream(temp, { mode: 0o600 });
  const writing = pipeline(pack, output);
  const written = new Set<string>();
  let size = 0;
  const addBlob = async (digest: string) => {
    if (written.has(digest)) return;
    written.add(digest);
    const blobSize = await content.size(digest);
    size += blobSize;
    const entry = pack.entry({ name: `blobs/sha256/${digest.slice(7)}`, size: blobSize, mode: 0o644 });
    await pipeline(content.openRead(digest), entry);
  };
  const addFile = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644 }, data, (err) => (err ? reject(err) : resolve())));
  try {
    await addFile('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    const descriptors: Descriptor[] = [];
    const dockerEntries: DockerManifestEntry[] = [];
    for (const image of images) {
      const manifestBytes = await content.read(image.manifestDigest);
      const manifest = parseJson<ManifestDoc>(manifestBytes, 'manifest');
      await addBlob(image.manifestDigest);
      await addBlob(image.id);
      for (const layer of image.layers) await addBlob(layer.digest);
      const mediaType = manifest.mediaType ?? OCI_MANIFEST;
      const names = image.repoTags.length > 0 ? image.repoTags : [undefined];
      for (const name of names) {
        descriptors.push({
          mediaType,
          digest: image.manifestDigest,
          size: manifestBytes.length,
          ...(name ? { annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.slice(name.lastIndexOf(':') + 1) } } : {}),
        });
      }
      dockerEntries.push({
        Config: `blobs/sha256/${image.id.slice(7)}`,
        RepoTags: image.repoTags,
        Layers: image.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
      });
    }
    await addFile('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: descriptors })));
    await addFile('manifest.json', Buffer.from(JSON.stringify(dockerEntries)));
    pack.finalize();
    await writing;
    await fsyncFile(temp);
    await rename(temp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    pack.destroy();
    await writing.catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  return size;
}
