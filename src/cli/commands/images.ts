// berthctl's image verbs, shaped like crictl's: pull, images, inspecti, rmi, imagefsinfo.
import { resolve as pathResolve } from 'node:path';
import type { MessageShape } from '@bufbuild/protobuf';
import { ImageFsInfoResponseSchema, ImageSchema, PodSandboxConfigSchema } from '../../gen/runtime/v1/api_pb.js';
import { loadMessageFile, NothingSelected, parseLabelSelector } from '../inputs.js';
import { call, type CriClients } from '../runtime-client.js';
import { GrpcStatus } from '../../server/grpc-wire.js';
import { truncateId } from '../format.js';
import { formatStatusDocs, formatStructured, formatTable, goMapString, humanSize, messageJson, withInfo, type OutputFormat } from '../output.js';

type Image = MessageShape<typeof ImageSchema>;

export interface PullOptions {
  creds?: string;
  auth?: string;
  username?: string;
  /** Milliseconds; 0 means no deadline (crictl's --pull-timeout). */
  pullTimeoutMs: number;
  /** Where a waiting indicator goes (a TTY), if anywhere. */
  progress?: NodeJS.WriteStream;
  /** crictl's --pod-config: the pod sandbox config sent with the pull. */
  podConfig?: string;
  /** crictl's --annotation KEY=VALUE: the image spec's annotations. */
  annotations?: string[];
}

export async function pullCommand(clients: CriClients, image: string, options: PullOptions): Promise<string> {
  const auth = authConfig(options);
  const sandboxConfig = options.podConfig === undefined ? undefined : await loadPodConfig(options.podConfig);
  const annotations = parseLabelSelector(options.annotations ?? []);
  const stopIndicator = options.progress ? await layerProgress(clients, image, options.progress) : async () => undefined;
  try {
    const response = await call('pulling image', () =>
      clients.image.pullImage({ image: { image, annotations }, auth, sandboxConfig }, { timeoutMs: options.pullTimeoutMs }),
    );
    return `Image is up to date for ${response.imageRef}\n`;
  } finally {
    await stopIndicator();
  }
}

/** crictl: "load podSandboxConfig: …" when the file is not a pod config. */
async function loadPodConfig(path: string) {
  try {
    return await loadMessageFile(PodSandboxConfigSchema, path);
  } catch (err) {
    throw new Error(`load podSandboxConfig: ${(err as Error).message}`);
  }
}

/**
 * On a terminal: one line per layer (berth.v1 ImagePullProgress), rewritten in place as
 * bytes arrive, and erased when the pull ends; against a runtime without that service
 * (containerd, CRI-O), the elapsed time on one line.
 */
async function layerProgress(clients: CriClients, image: string, stream: NodeJS.WriteStream): Promise<() => Promise<void>> {
  let lines = 0;
  let fallback: (() => void) | undefined;
  const watch = clients.pullProgress.watchPull({ image });
  const erase = () => {
    if (lines > 0) stream.write(`\x1b[${lines}A\r\x1b[J`);
    lines = 0;
  };
  let ready: () => void = () => undefined;
  const inPlace = new Promise<void>((resolve) => (ready = resolve));
  let ended = false;
  const running = (async () => {
    try {
      for await (const progress of watch) {
        ready();
        if (progress.layers.length === 0) continue;
        let out = lines > 0 ? `\x1b[${lines}A` : '';
        for (const layer of progress.layers) {
          const state = layer.done ? 'done' : layer.fetched === 0n ? 'waiting' : 'downloading';
          out += `\r\x1b[K${layer.digest.replace(/^sha256:/, '').slice(0, 12)}: ${state.padEnd(11)} ${humanSize(Number(layer.fetched), 3)}/${humanSize(Number(layer.size), 3)}\n`;
        }
        lines = progress.layers.length;
        stream.write(out);
      }
    } catch (err) {
      if ((err as { code?: number }).code === GrpcStatus.UNIMPLEMENTED) fallback = waitingIndicator(stream, `pulling ${image}`);
    } finally {
      ended = true;
      ready();
    }
  })();
  // The pull starts once the watch is in place (or the runtime has none), at most 1 s later.
  await Promise.race([inPlace, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  return async () => {
    // The final state comes right after the pull: give it a moment before cancelling.
    for (let i = 0; i < 20 && !ended; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    watch.cancel();
    await running;
    fallback?.();
    erase();
  };
}

export function authConfig(options: Pick<PullOptions, 'creds' | 'auth' | 'username'>): { username?: string; password?: string; auth?: string } | undefined {
  if (options.creds !== undefined) {
    const colon = options.creds.indexOf(':');
    if (colon < 0) throw new Error('--creds must be USERNAME[:PASSWORD] with a colon between them');
    return { username: options.creds.slice(0, colon), password: options.creds.slice(colon + 1) };
  }
  if (options.auth !== undefined) return { auth: options.auth };
  if (options.username !== undefined) return { username: options.username };
  return undefined;
}

/** CRI has no pull progress, so a TTY gets the elapsed time on one refreshed line. */
function waitingIndicator(stream: NodeJS.WriteStream, label: string): () => void {
  const started = Date.now();
  const draw = () => stream.write(`\r${label} ... ${((Date.now() - started) / 1000).toFixed(1)}s`);
  draw();
  const timer = setInterval(draw, 200);
  return () => {
    clearInterval(timer);
    stream.write('\r\x1b[K');
  };
}

export interface ImagesOptions {
  quiet: boolean;
  digests: boolean;
  verbose: boolean;
  noTrunc: boolean;
  /** crictl's --pinned: a PINNED column. */
  pinned?: boolean;
  /** crictl's --filter conditions. */
  filters?: string[];
  output: OutputFormat;
}

/** crictl's order: by first repo tag, else first repo digest, else id (byte order). */
function compareImages(a: Image, b: Image): number {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  if (a.repoTags.length > 0 && b.repoTags.length > 0) return cmp(a.repoTags[0]!, b.repoTags[0]!);
  if (a.repoDigests.length > 0 && b.repoDigests.length > 0) return cmp(a.repoDigests[0]!, b.repoDigests[0]!);
  return cmp(a.id, b.id);
}

/**
 * crictl's ListImages: the images a name refers to (all without one), in crictl's order,
 * then its --filter conditions in the order given (dangling=, reference=, before=, since=).
 */
export async function listImages(clients: CriClients, name: string | undefined, conditions: string[] = []): Promise<Image[]> {
  const response = await call('listing images', () =>
    clients.image.listImages({ filter: { image: { image: name ?? '' } } }, { timeoutMs: clients.settings.timeoutMs }),
  );
  const images = [...response.images].sort(compareImages);
  return images.length === 0 ? images : filterImages(images, conditions);
}

/** crictl's filterImagesList, quirks included (before= and since= stop at the named image). */
export function filterImages(images: Image[], conditions: string[]): Image[] {
  let filtered = [...images];
  for (const condition of conditions) {
    const [kind, value] = [condition.slice(0, condition.indexOf('=') + 1), condition.slice(condition.indexOf('=') + 1)];
    if (kind === 'before=') filtered = beforeSince(value, [...filtered].reverse()).reverse();
    else if (kind === 'since=') filtered = beforeSince(value, filtered);
    else if (kind === 'dangling=') filtered = filtered.filter((i) => (value === 'true' && i.repoTags.length === 0) || (value === 'false' && i.repoTags.length > 0));
    else if (kind === 'reference=') {
      let re: RegExp;
      try {
        re = new RegExp(value);
      } catch (err) {
        throw new Error(`filter images: ${(err as Error).message}`);
      }
      filtered = filtered.filter((i) => {
        const [name] = repoDigestPair(i.repoDigests);
        return re.test(name) || name === value;
      });
    } else throw new Error(`filter images: unknown filter flag: ${condition}`);
  }
  return filtered;
}

/** crictl's filterByBeforeSince: the images up to the one the value names (NAME:TAG, an id prefix, NAME@DIGEST). */
function beforeSince(value: string, images: Image[]): Image[] {
  const picked: Image[] = [];
  const byTag = value.includes(':') && !value.includes('@');
  const byId = !value.includes(':') && !value.includes('@');
  for (const image of images) {
    if (byTag) {
      if (repoTagPairs(image.repoTags, repoDigestPair(image.repoDigests)[0])[0]!.join(':') === value) break;
      picked.push(image);
    } else if (byId) {
      if (image.id.startsWith(value)) break;
      picked.push(image);
    } else if (image.repoDigests.length > 0) {
      if (image.repoDigests[0]!.startsWith(value)) break;
      picked.push(image);
    }
  }
  return picked;
}

export async function imagesCommand(clients: CriClients, filter: string | undefined, options: ImagesOptions): Promise<string> {
  const images = await listImages(clients, filter, options.filters);
  if (options.output !== 'table') {
    return formatStructured({ images: images.map((i) => messageJson(ImageSchema, i)) }, options.output);
  }
  if (options.quiet) return images.map((i) => `${i.id}\n`).join('');
  if (options.verbose) {
    return images
      .map((i) =>
        [
          `ID: ${i.id}`,
          ...i.repoTags.map((t) => `RepoTags: ${t}`),
          ...i.repoDigests.map((d) => `RepoDigests: ${d}`),
          i.size !== 0n ? `Size: ${i.size}` : '',
          i.uid ? `Uid: value:${i.uid.value}` : '',
          i.username ? `Username: ${i.username}` : '',
          i.pinned ? 'Pinned: true' : '',
        ]
          .filter((l) => l !== '')
          .join('\n') + '\n\n',
      )
      .join('');
  }
  const header = ['IMAGE', 'TAG', ...(options.digests ? ['DIGEST'] : []), 'IMAGE ID', 'SIZE', ...(options.pinned ? ['PINNED'] : [])];
  const rows: string[][] = [];
  for (const image of images) {
    const [name, digest] = repoDigestPair(image.repoDigests);
    for (const [repo, tag] of repoTagPairs(image.repoTags, name)) {
      rows.push([
        repo,
        tag,
        ...(options.digests ? [options.noTrunc ? digest : truncateId(digest)] : []),
        options.noTrunc ? image.id : truncateId(image.id),
        humanSize(Number(image.size), 3),
        ...(options.pinned ? [String(image.pinned)] : []),
      ]);
    }
  }
  return formatTable(header, rows);
}

/**
 * inspecti: the given images, or without any those a name (--name) and --filter pick, as
 * crictl. `verbose: false` (crictl's -q) leaves the info out.
 */
export async function inspectImageCommand(clients: CriClients, names: string[], output: OutputFormat, template = '', verbose = true, select?: { name?: string; filters: string[] }): Promise<string> {
  if (names.length === 0 && select) names = (await listImages(clients, select.name, select.filters)).map((i) => i.id);
  if (names.length === 0) throw new NothingSelected();
  const results: unknown[] = [];
  let table = '';
  for (const name of names) {
    const response = await call(`image status for "${name}" request`, () =>
      clients.image.imageStatus({ image: { image: name }, verbose }, { timeoutMs: clients.settings.timeoutMs }),
    );
    if (!response.image) throw new Error(`no such image "${name}" present`);
    if (output === 'table') {
      // crictl's outputImageStatusTable.
      const i = response.image;
      table += [`ID: ${i.id}`, ...i.repoTags.map((t) => `Tag: ${t}`), ...i.repoDigests.map((d) => `Digest: ${d}`), `Size: ${humanSize(Number(i.size), 3)}`, ...(verbose ? [`Info: ${goMapString(response.info)}`] : [])].join('\n') + '\n';
    } else results.push(withInfo({ status: messageJson(ImageSchema, response.image) }, response.info));
  }
  return output === 'table' ? table : formatStatusDocs(results, output, template);
}

export interface RemoveImagesOptions {
  all: boolean;
  prune: boolean;
}

export async function removeImagesCommand(clients: CriClients, names: string[], options: RemoveImagesOptions): Promise<string> {
  const timeoutMs = clients.settings.timeoutMs;
  let targets: Image[];
  if (options.all || options.prune) {
    const listed = (await call('listing images', () => clients.image.listImages({}, { timeoutMs }))).images;
    let inUse = new Set<string>();
    if (options.prune) {
      const containers = await call('listing containers', () => clients.runtime.listContainers({}, { timeoutMs }));
      inUse = new Set(containers.containers.flatMap((c) => [c.imageRef, c.image?.image ?? '', c.imageId]).filter(Boolean));
    }
    targets = listed.filter((i) => !i.pinned && !inUse.has(i.id) && !i.repoTags.some((t) => inUse.has(t)));
  } else {
    if (names.length === 0) throw new Error('rmi: give at least one image, or --all or --prune');
    targets = [];
    for (const name of names) {
      const status = await call(`getting the status of image "${name}"`, () => clients.image.imageStatus({ image: { image: name } }, { timeoutMs }));
      if (!status.image) throw new Error(`no such image "${name}"`);
      targets.push(status.image);
    }
  }
  let out = '';
  for (const image of targets) {
    await call(`removing image "${image.id}"`, () => clients.image.removeImage({ image: { image: image.id } }, { timeoutMs }));
    const names = image.repoTags.length > 0 ? image.repoTags : image.repoDigests.length > 0 ? image.repoDigests : [image.id];
    out += names.map((n) => `Deleted: ${n}\n`).join('');
  }
  return out;
}

export async function imageFsInfoCommand(clients: CriClients, output: OutputFormat, template = ''): Promise<string> {
  const response = await call('getting image filesystem info', () => clients.image.imageFsInfo({}, { timeoutMs: clients.settings.timeoutMs }));
  if (output === 'table') {
    // crictl's outputImageFsInfoTable (the trailing space of the titles included).
    const section = (label: string, filesystems: typeof response.imageFilesystems) =>
      `${label} Filesystem \n` +
      filesystems
        .map((fs, i) => `TimeStamp[${i}]: ${fs.timestamp}\nDisk[${i}]: ${humanSize(Number(fs.usedBytes?.value ?? 0n))}\nInodes[${i}]: ${fs.inodesUsed?.value ?? 0n}\nMountpoint[${i}]: ${fs.fsId?.mountpoint ?? ''}\n`)
        .join('');
    return section('Container', response.containerFilesystems) + section('Image', response.imageFilesystems);
  }
  return formatStatusDocs([{ status: messageJson(ImageFsInfoResponseSchema, response) }], output, template);
}

/** crictl's normalizeRepoDigest: the first repo digest as [name, digest]. */
function repoDigestPair(repoDigests: string[]): [string, string] {
  if (repoDigests.length === 0) return ['<none>', '<none>'];
  const parts = repoDigests[0]!.split('@');
  return parts.length === 2 ? [parts[0]!, parts[1]!] : ['errorName', 'errorRepoDigest'];
}

/** crictl's normalizeRepoTagPair: one row per repo tag, or the digest's name with <none>. */
function repoTagPairs(repoTags: string[], imageName: string): Array<[string, string]> {
  if (repoTags.length === 0) return [[imageName, '<none>']];
  return repoTags.map((t) => {
    const colon = t.lastIndexOf(':');
    if (colon < 0) return ['errorRepoTag', 'errorRepoTag'];
    const name = t.slice(0, colon);
    return [name === '<none>' ? imageName : name, t.slice(colon + 1)];
  });
}

/** berthctl image import: berth's own API, so other runtimes are told plainly. */
export async function importCommand(clients: CriClients, archive: string, names: string[]): Promise<string> {
  const response = await call('importing images', () =>
    transferCall(() => clients.transfer.importImages({ archivePath: resolvePath(archive), names }, { timeoutMs: 0 })),
  );
  return response.images.map((i) => `Imported ${i.id}${i.repoTags.length > 0 ? ` as ${i.repoTags.join(', ')}` : ''}\n`).join('');
}

export async function exportCommand(clients: CriClients, images: string[], archive: string): Promise<string> {
  const response = await call('exporting images', () =>
    transferCall(() => clients.transfer.exportImages({ images, archivePath: resolvePath(archive) }, { timeoutMs: 0 })),
  );
  return `Exported ${images.length} image(s), ${humanSize(Number(response.size))}, to ${resolvePath(archive)}\n`;
}

async function transferCall<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if ((err as { code?: number }).code === GrpcStatus.UNIMPLEMENTED) {
      throw new Error('the runtime does not serve berth.v1.ImageTransfer: image import and export need berthd');
    }
    throw err;
  }
}

function resolvePath(path: string): string {
  return pathResolve(process.cwd(), path);
}
