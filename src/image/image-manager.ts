// The image box's interface to the rest of berth: pull, look up, list, remove, measure,
// and collect what no image uses. The CRI handlers only translate to and from this.
import { PassThrough } from 'node:stream';
import type { Logger } from '../util/logger.js';
import { BerthError, notFound, invalidArgument } from '../errors.js';
import { PullProgress } from './pull-progress.js';
import { SingleFlight } from '../util/single-flight.js';
import { mapLimit } from '../util/map-limit.js';
import { ContentStore, sha256Digest } from './content-store.js';
import { ImageStore, type ImageLayer, type ImageRecord } from './image-store.js';
import { INDEX_TYPES, MANIFEST_TYPES } from './media-types.js';
import { digestReference, formatReference, parseReference, tagReference, type ImageReference } from '../util/image-reference.js';
import { RegistryClient, type RegistryCredentials, type RegistryEndpoint } from './registry-client.js';
import { SnapshotStore } from './snapshot-store.js';
import { openLayerPipe, warmLayerWorkers, WORKER_MIN_BYTES, type LayerPipe } from './layer-unpack-worker.js';
import { choosePlatform, imageLayers, parseJson, type Descriptor, type ImageConfigDoc, type ImageRuntimeConfig, type ManifestDoc } from './manifest.js';

export interface ImageManagerOptions {
  root: string;
  registry: RegistryClient;
  pinnedImages: string[];
  log: Logger;
  /** Layers of one pull downloaded at once. */
  parallelLayers?: number;
  /** Told of each pull that finished: the bytes of the layers it downloaded and of its manifests. */
  onPulled?: (downloadedBytes: number) => void;
}

export interface FsUsage {
  mountpoint: string;
  bytes: number;
  inodes: number;
}

const BLOB_ATTEMPTS = 3;
/** Image config documents whose text is kept in memory (a few KB each). */
const CONFIG_CACHE_SIZE = 64;
/** How far a download may run ahead of the unpack that reads it. */
const STREAM_BUFFER = 4 * 1024 * 1024;

/** The unpack stream was given up because its download restarts; unpack from the store. */
class StreamAbandoned extends Error {
  constructor() {
    super('download restarted; unpacking from the stored blob instead');
  }
}

/** Writes each downloaded chunk to the unpack stream, waiting when it is full. */
function feedInto(stream: PassThrough): (chunk: Uint8Array) => Promise<void> {
  return async (chunk) => {
    if (stream.destroyed) throw new BerthError('Aborted', 'layer unpack stopped');
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off('drain', done);
          stream.off('close', done);
          resolve();
        };
        stream.once('drain', done);
        stream.once('close', done);
      });
    }
  };
}

/** What a container is made from (ImageManager.forContainer). */
export interface ContainerImage {
  /** Snapshot directories, top layer first. */
  lowerDirs: string[];
  config: ImageRuntimeConfig;
}

export class ImageManager {
  readonly content: ContentStore;
  readonly snapshots: SnapshotStore;
  readonly images: ImageStore;
  readonly #pulls = new SingleFlight<ImageRecord>();
  /** Per-layer progress of the pulls running now (berth.v1 ImagePullProgress). */
  readonly progress = new PullProgress();
  readonly #configTexts = new Map<string, string>();
  readonly #pinned: Set<string>;
  /** Digests and chain IDs that running pulls have fetched but not yet recorded: GC keeps them. */
  readonly #leased = new Map<string, number>();
  #holders: () => Iterable<string> = () => [];

  constructor(private readonly options: ImageManagerOptions) {
    this.content = new ContentStore(options.root);
    this.snapshots = new SnapshotStore(options.root);
    this.images = new ImageStore(options.root);
    this.#pinned = new Set(options.pinnedImages.map((p) => formatReference(parseReference(p))));
  }

  /**
   * Loads records and collects leftovers of crashes: partial downloads, unpacks, orphans.
   * `collect: false` leaves the collection to the caller, for when the holders of
   * snapshots (containers) are loaded after the images.
   */
  async init(options: { collect?: boolean } = {}): Promise<void> {
    await this.content.init();
    await this.snapshots.init();
    for (const problem of await this.images.load()) this.options.log.error({ problem }, 'skipping unreadable image record');
    await this.content.clearIngest();
    await this.snapshots.clearTemp();
    if (options.collect !== false) await this.collectLeftovers();
  }

  /** Collects what no image, pull or container references, and says so when there was some. */
  async collectLeftovers(): Promise<void> {
    const removed = await this.collectGarbage();
    if (removed.blobs + removed.snapshots > 0) this.options.log.info(removed, 'removed content no image references');
  }

  /**
   * Who else holds snapshots: the chain IDs returned are kept by garbage collection even
   * when no image references them any more (a container's rootfs is made of its image's
   * snapshots, and RemoveImage removes the image record while the container exists, as
   * containerd does: its snapshots are leased by the container).
   */
  holdSnapshots(holders: () => Iterable<string>): void {
    this.#holders = holders;
  }

  /** The chain IDs of an image's snapshots, bottom layer first. */
  chainIds(image: ImageRecord): string[] {
    return image.layers.map((l) => l.chainId);
  }

  /** Pulls an image (shared with a pull of the same reference already running). */
  pull(reference: string, credentials: RegistryCredentials, signal?: AbortSignal): Promise<ImageRecord> {
    const ref = parseReference(reference);
    const key = formatReference(ref);
    return this.#pulls.run(key, () =>
      this.#leasing((lease) => this.#pull(ref, credentials, lease, signal)).finally(() => this.progress.end(key)),
    );
  }

  /** The key the progress of a pull of `reference` is kept under (as pulls are shared). */
  progressKey(reference: string): string {
    return formatReference(parseReference(reference));
  }

  /** Runs work that stores content before recording an image: GC keeps what it leases. */
  async #leasing<T>(work: (lease: (key: string) => void) => Promise<T>): Promise<T> {
    const leased: string[] = [];
    const lease = (key: string) => {
      leased.push(key);
      this.#leased.set(key, (this.#leased.get(key) ?? 0) + 1);
    };
    try {
      return await work(lease);
    } finally {
      for (const key of leased) {
        const n = this.#leased.get(key)! - 1;
        if (n === 0) this.#leased.delete(key);
        else this.#leased.set(key, n);
      }
    }
  }

  async #pull(ref: ImageReference, credentials: RegistryCredentials, lease: (key: string) => void, signal?: AbortSignal): Promise<ImageRecord> {
    const started = Date.now();
    const registry = this.options.registry;
    const top = await registry.fetchManifest(ref, credentials, signal);
    const topDigest = sha256Digest(top.bytes);
    if (ref.digest && ref.digest !== topDigest) {
      throw new BerthError('DataLoss', `registry returned content with digest ${topDigest} for ${formatReference(ref)}`);
    }
    const topDoc = parseJson<ManifestDoc>(top.bytes, 'manifest');
    const mediaType = top.mediaType || topDoc.mediaType || (topDoc.manifests ? INDEX_TYPES[0]! : MANIFEST_TYPES[0]!);
    const contentSizes: number[] = [top.bytes.length];
    lease(topDigest);
    await this.content.put(topDigest, top.bytes);

    let manifestDigest = topDigest;
    let manifest = topDoc;
    if (INDEX_TYPES.includes(mediaType) || topDoc.manifests) {
      const chosen = choosePlatform(topDoc.manifests ?? [], formatReference(ref));
      const bytes = await registry.fetchManifestByDigest(top.endpoint, ref, chosen.digest, credentials, signal);
      if (sha256Digest(bytes) !== chosen.digest) throw new BerthError('DataLoss', `manifest ${chosen.digest} from the registry does not match its digest`);
      lease(chosen.digest);
      await this.content.put(chosen.digest, bytes);
      contentSizes.push(bytes.length);
      manifestDigest = chosen.digest;
      manifest = parseJson<ManifestDoc>(bytes, 'manifest');
    }
    const config = manifest.config;
    if (!config) throw invalidArgument(`${formatReference(ref)}: manifest ${manifestDigest} has no config`);
    // The layer workers start while the config is fetched (for blobs not stored yet).
    const declared = (manifest.layers ?? []).filter((l) => typeof l.size === 'number' && l.size >= WORKER_MIN_BYTES);
    const missing = await Promise.all(declared.map(async (l) => !(await this.content.has(l.digest))));
    warmLayerWorkers(missing.filter(Boolean).length);
    lease(config.digest);
    await this.#ingest(top.endpoint, ref, config, credentials, signal);
    const { layers, configDoc } = imageLayers(manifest, await this.content.read(config.digest), formatReference(ref));
    for (const layer of layers) {
      lease(layer.digest);
      lease(layer.chainId);
    }
    let downloaded = contentSizes.reduce((a, b) => a + b, 0);
    const key = formatReference(ref);
    const present = await Promise.all(layers.map((layer) => this.snapshots.has(layer.chainId)));
    this.progress.start(key, layers.map((layer, i) => ({ digest: layer.digest, size: layer.size, fetched: present[i] ? layer.size : 0, done: present[i]! })));
    // Biggest first: the workers' jobs are spread by bytes, and the longest start first.
    const bySize = [...layers].sort((a, b) => b.size - a.size);
    await mapLimit(bySize, this.options.parallelLayers ?? 6, async (layer) => {
      if (await this.snapshots.has(layer.chainId)) return;
      const started = Date.now();
      await this.#fetchLayer(top.endpoint, ref, layer, credentials, signal);
      this.progress.finished(key, layer.digest);
      downloaded += layer.size;
      this.options.log.debug({ layer: layer.digest, bytes: layer.size, ms: Date.now() - started }, 'layer ready');
    });

    const tag = tagReference(ref);
    const record = await this.images.add({
      id: config.digest,
      repoTags: tag ? [tag] : [],
      repoDigests: [digestReference(ref, topDigest)],
      manifestDigest,
      indexDigest: manifestDigest !== topDigest ? topDigest : undefined,
      size: contentSizes.reduce((a, b) => a + b, 0) + config.size + layers.reduce((a, l) => a + l.size, 0),
      layers,
      user: configDoc.config?.User ?? '',
      annotations: manifest.annotations ?? {},
      createdAt: new Date().toISOString(),
    });
    this.options.log.info({ image: formatReference(ref), id: record.id, layers: layers.length, ms: Date.now() - started }, 'image pulled');
    this.options.onPulled?.(downloaded);
    return record;
  }

  /**
   * Imports the images of an OCI layout or `docker save` archive. Every blob is checked
   * against its digest and every layer against the config's diff IDs, as for a pull.
   * `names` replace the archive's own names when it holds one image.
   */
  importArchive(path: string, names: string[]): Promise<ImageRecord[]> {
    return this.#leasing(async (lease) => {
      // Loaded when an archive is imported or exported (tar-stream), not at start-up.
      const { readImageArchive, resolveArchiveImages } = await import('./image-archive.js');
      const archive = await readImageArchive(path, this.content, lease);
      const found = await resolveArchiveImages(archive, this.content);
      if (found.length === 0) throw invalidArgument(`${path} holds no image (no index.json or manifest.json naming one)`);
      if (names.length > 0 && found.length !== 1) throw invalidArgument(`${path} holds ${found.length} images; names can be given only for one`);
      const records: ImageRecord[] = [];
      for (const image of found) {
        const manifestBytes = image.manifestBytes ?? (await this.content.read(image.manifestDigest));
        if (image.manifestBytes) await this.content.put(image.manifestDigest, image.manifestBytes);
        lease(image.manifestDigest);
        const manifest = parseJson<ManifestDoc>(manifestBytes, 'manifest');
        if (!manifest.config) throw invalidArgument(`${path}: manifest ${image.manifestDigest} has no config`);
        const { layers, configDoc } = imageLayers(manifest, await this.content.read(manifest.config.digest), path);
        for (const layer of layers) {
          if (!(await this.content.has(layer.digest))) throw invalidArgument(`${path}: layer ${layer.digest} is not in the archive`);
          lease(layer.chainId);
          await this.snapshots.ensure(layer.chainId, layer.diffId, () => this.content.openRead(layer.digest) as AsyncIterable<Uint8Array>, undefined, layer.size);
        }
        const refs = (names.length > 0 ? names : image.names).map((n) => parseReference(n));
        records.push(
          await this.images.add({
            id: manifest.config.digest,
            repoTags: refs.map(tagReference).filter((t): t is string => t !== undefined),
            repoDigests: [...new Set(refs.map((r) => digestReference(r, image.manifestDigest)))],
            manifestDigest: image.manifestDigest,
            size: manifestBytes.length + manifest.config.size + layers.reduce((a, l) => a + l.size, 0),
            layers,
            user: configDoc.config?.User ?? '',
            annotations: manifest.annotations ?? {},
            createdAt: new Date().toISOString(),
          }),
        );
      }
      this.options.log.info({ archive: path, images: records.map((r) => r.id) }, 'images imported');
      return records;
    });
  }

  /** Writes images to an archive that both OCI tools and `docker load` read. */
  async exportArchive(names: string[], path: string): Promise<number> {
    const images = names.map((n) => this.get(n));
    const { writeImageArchive } = await import('./image-archive.js');
    return writeImageArchive(path, images, this.content);
  }

  /**
   * Downloads a layer and unpacks it. The bytes go to the content store and to the
   * unpacker at once, so the network and the disk work in parallel; should the download
   * need a retry, the streamed unpack is dropped and the layer is unpacked from the
   * stored blob once it is complete.
   */
  async #fetchLayer(endpoint: RegistryEndpoint, ref: ImageReference, layer: ImageLayer, credentials: RegistryCredentials, signal?: AbortSignal): Promise<void> {
    const fromStore = () => this.content.openRead(layer.digest) as AsyncIterable<Uint8Array>;
    const descriptor = { digest: layer.digest, size: layer.size, mediaType: layer.mediaType };
    // Stream only when this call will both download and unpack: joining another pull's
    // download or unpack would leave the stream unfed or unread. No await between these
    // checks and the calls below, which register this pull's download and unpack.
    if ((await this.content.has(layer.digest)) || this.content.isDownloading(layer.digest) || this.snapshots.isUnpacking(layer.chainId)) {
      await this.#ingest(endpoint, ref, descriptor, credentials, signal);
      await this.snapshots.ensure(layer.chainId, layer.diffId, fromStore, undefined, layer.size);
      return;
    }
    if (layer.size >= WORKER_MIN_BYTES) return this.#fetchLayerInWorker(endpoint, ref, layer, credentials, signal);
    const stream = new PassThrough({ highWaterMark: STREAM_BUFFER });
    const download = this.#ingest(endpoint, ref, descriptor, credentials, signal, stream);
    // The download may fail while the unpack is still running; its error is awaited
    // below, but must count as handled from the start or Node ends the process.
    download.catch(() => undefined);
    try {
      await this.snapshots.ensure(layer.chainId, layer.diffId, () => stream, download, layer.size);
    } catch (err) {
      if (!(err instanceof StreamAbandoned)) {
        stream.destroy();
        await download.catch(() => undefined);
        throw err;
      }
      await download;
      await this.snapshots.ensure(layer.chainId, layer.diffId, fromStore, undefined, layer.size);
    } finally {
      // Whatever the unpack did not read must not hold the download back.
      stream.resume();
    }
  }

  /**
   * A big layer's whole pipeline in a worker thread from its first byte (LayerPipe): the
   * worker hashes and writes the blob and unpacks it at once; the main thread receives
   * the body and checks the blob's digest and the diff ID. Should the download need a
   * retry (or join another pull's), the layer is unpacked from the stored blob instead.
   */
  async #fetchLayerInWorker(endpoint: RegistryEndpoint, ref: ImageReference, layer: ImageLayer, credentials: RegistryCredentials, signal?: AbortSignal): Promise<void> {
    const descriptor = { digest: layer.digest, size: layer.size, mediaType: layer.mediaType };
    let download: Promise<void> | undefined;
    try {
      await this.snapshots.ensureWith(layer.chainId, layer.diffId, async (target) => {
        const pipe = openLayerPipe(target, layer.size, (bytes) => this.progress.received(formatReference(ref), layer.digest, bytes));
        try {
          download = this.#ingest(endpoint, ref, descriptor, credentials, signal, undefined, pipe);
          // Awaited below, after the unpack, but handled from the start (else Node ends the process).
          download.catch(() => undefined);
          let result;
          try {
            result = await pipe.unpacked;
          } catch (err) {
            // The download stopped under the unpack: its outcome decides (its error, or
            // the stored blob once a retry completed it).
            if (pipe.stopped || err instanceof StreamAbandoned) {
              await download;
              throw new StreamAbandoned();
            }
            throw err;
          }
          await download;
          return result;
        } finally {
          await pipe.close();
        }
      });
    } catch (err) {
      if (!(err instanceof StreamAbandoned)) {
        await download?.catch(() => undefined);
        throw err;
      }
    }
    // Unpacked from the store: after a retried download, or when another pull had this
    // layer's unpack running (this one's was never started).
    await (download ?? this.#ingest(endpoint, ref, descriptor, credentials, signal));
    await this.snapshots.ensure(layer.chainId, layer.diffId, () => this.content.openRead(layer.digest) as AsyncIterable<Uint8Array>, undefined, layer.size);
  }

  /** Downloads one blob into the content store, resuming after interruptions. */
  async #ingest(
    endpoint: RegistryEndpoint,
    ref: ImageReference,
    descriptor: Pick<Descriptor, 'digest' | 'size' | 'mediaType'>,
    credentials: RegistryCredentials,
    signal?: AbortSignal,
    stream?: PassThrough,
    pipe?: LayerPipe,
  ): Promise<void> {
    const fetch = this.options.registry.blobSource(endpoint, ref, descriptor.digest, credentials, signal);
    // Bytes received are reported as progress (a resumed download counts from its offset).
    const key = formatReference(ref);
    // (A layer worker fetching the blob itself reports what it received through its pipe.)
    const source: typeof fetch = Object.assign(
      async (offset: number) => {
        const opened = await fetch(offset);
        const progress = this.progress;
        return {
          ...opened,
          body: (async function* () {
            for await (const chunk of opened.body) {
              progress.received(key, descriptor.digest, chunk.length);
              yield chunk;
            }
          })(),
        };
      },
      { direct: fetch.direct },
    );
    let feed = stream;
    let sinkPipe = pipe;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.content.ingest(descriptor.digest, descriptor.size, source, feed && feedInto(feed), sinkPipe && ((partial) => sinkPipe!.sink(partial)));
        feed?.end();
        // A download this pull joined (or a resumed one) never fed the pipe's unpack.
        if (sinkPipe && !sinkPipe.used) sinkPipe.abandon(new StreamAbandoned());
        return;
      } catch (err) {
        const retriable = err instanceof BerthError && err.code === 'Unavailable' && !signal?.aborted;
        if (!retriable || attempt >= BLOB_ATTEMPTS) {
          feed?.destroy(err as Error);
          sinkPipe?.abandon(err);
          throw err;
        }
        // The streamed unpack has seen bytes a resumed download will not repeat cleanly.
        feed?.destroy(new StreamAbandoned());
        feed = undefined;
        sinkPipe?.abandon(new StreamAbandoned());
        sinkPipe = undefined;
        this.options.log.warn({ digest: descriptor.digest, attempt, error: (err as Error).message }, 'blob download interrupted; resuming');
      }
    }
  }

  /** The image a name refers to, or undefined. */
  find(name: string): ImageRecord | undefined {
    return this.images.find(name);
  }

  list(): ImageRecord[] {
    return this.images.list();
  }

  isPinned(image: ImageRecord): boolean {
    // Asked for every image of every ImageStatus and ListImages: no arrays made for it.
    if (this.#pinned.size === 0) return false;
    return image.repoTags.some((n) => this.#pinned.has(n)) || image.repoDigests.some((n) => this.#pinned.has(n));
  }

  /** Removes an image by any of its names; false when there was none (not an error). */
  async remove(name: string): Promise<boolean> {
    const image = this.images.find(name);
    if (!image) return false;
    await this.images.remove(image.id);
    await this.collectGarbage();
    return true;
  }

  /** Deletes blobs and snapshots that no image references. */
  async collectGarbage(): Promise<{ blobs: number; snapshots: number }> {
    const usedBlobs = new Set<string>(this.#leased.keys());
    const usedChains = new Set<string>([...this.#leased.keys(), ...this.#holders()]);
    for (const image of this.images.list()) {
      usedBlobs.add(image.id);
      usedBlobs.add(image.manifestDigest);
      if (image.indexDigest) usedBlobs.add(image.indexDigest);
      for (const layer of image.layers) {
        usedBlobs.add(layer.digest);
        usedChains.add(layer.chainId);
      }
    }
    let blobs = 0;
    let snapshots = 0;
    for (const digest of await this.content.list()) {
      if (!usedBlobs.has(digest)) {
        await this.content.delete(digest);
        blobs++;
      }
    }
    for (const chainId of await this.snapshots.list()) {
      if (!usedChains.has(chainId)) {
        await this.snapshots.remove(chainId);
        snapshots++;
      }
    }
    return { blobs, snapshots };
  }

  /** What the image store takes on disk, and the mount it lives on. */
  async fsUsage(): Promise<FsUsage> {
    const [blobs, snapshots] = await Promise.all([this.content.usage(), this.snapshots.usage()]);
    return { mountpoint: this.options.root, bytes: blobs.bytes + snapshots.bytes, inodes: blobs.inodes + snapshots.inodes };
  }

  /**
   * The image's config document as stored (verbose ImageStatus shows it whole; every
   * CreateContainer reads it). Its text is kept for the last CONFIG_CACHE_SIZE images: it
   * is named by its digest, so it never changes; each caller gets its own parsed copy.
   */
  async configDocument(image: ImageRecord): Promise<ImageConfigDoc> {
    let text = this.#configTexts.get(image.id);
    if (text === undefined) {
      text = (await this.content.read(image.id)).toString('utf8');
      this.#configTexts.set(image.id, text);
      if (this.#configTexts.size > CONFIG_CACHE_SIZE) this.#configTexts.delete(this.#configTexts.keys().next().value!);
    }
    return JSON.parse(text) as ImageConfigDoc;
  }

  /**
   * What a container of the image needs from it, answered here once: the snapshot
   * directories of its rootfs, top layer first (overlayfs' lowerdir order), and the
   * runtime config (entrypoint, cmd, env, working dir, user, stop signal).
   */
  async forContainer(image: ImageRecord): Promise<ContainerImage> {
    const doc = await this.configDocument(image);
    return { lowerDirs: image.layers.map((l) => this.snapshots.path(l.chainId)).reverse(), config: doc.config ?? {} };
  }

  /** Throws NotFound unless the image exists. */
  get(name: string): ImageRecord {
    const image = this.find(name);
    if (!image) throw notFound('image', name);
    return image;
  }
}

