// berthctl's image verbs, shaped like crictl's: pull, images, inspecti, rmi, imagefsinfo.
import { resolve as pathResolve } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { MessageShape } from '@bufbuild/protobuf';
import { ImageFsInfoResponseSchema, ImageSchema } from '../../gen/runtime/v1/api_pb.js';
import { call, type CriClients } from '../runtime-client.js';
import { formatStructured, formatTable, messageJson, withInfo, type OutputFormat } from '../output.js';

type Image = MessageShape<typeof ImageSchema>;

export interface PullOptions {
  creds?: string;
  auth?: string;
  username?: string;
  /** Milliseconds; 0 means no deadline (crictl's --pull-timeout). */
  pullTimeoutMs: number;
  /** Where a waiting indicator goes (a TTY), if anywhere. */
  progress?: NodeJS.WriteStream;
}

export async function pullCommand(clients: CriClients, image: string, options: PullOptions): Promise<string> {
  const auth = authConfig(options);
  const stopIndicator = options.progress ? waitingIndicator(options.progress, `pulling ${image}`) : () => undefined;
  try {
    const response = await call('pulling image', () =>
      clients.image.pullImage({ image: { image }, auth }, { timeoutMs: options.pullTimeoutMs }),
    );
    return `Image is up to date for ${response.imageRef}\n`;
  } finally {
    stopIndicator();
  }
}

function authConfig(options: PullOptions): { username?: string; password?: string; auth?: string } | undefined {
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
  output: OutputFormat;
}

export async function imagesCommand(clients: CriClients, filter: string | undefined, options: ImagesOptions): Promise<string> {
  const response = await call('listing images', () =>
    clients.image.listImages({ filter: filter ? { image: { image: filter } } : undefined }, { timeoutMs: clients.settings.timeoutMs }),
  );
  const images = [...response.images].sort((a, b) => (a.repoTags[0] ?? a.id).localeCompare(b.repoTags[0] ?? b.id));
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
          `Size: ${i.size}`,
          i.uid ? `Uid: value:${i.uid.value}` : i.username ? `Username: ${i.username}` : '',
          i.pinned ? 'Pinned: true' : '',
        ]
          .filter((l) => l !== '')
          .join('\n') + '\n\n',
      )
      .join('');
  }
  const header = ['IMAGE', 'TAG', ...(options.digests ? ['DIGEST'] : []), 'IMAGE ID', 'SIZE'];
  const rows: string[][] = [];
  for (const image of images) {
    const digest = image.repoDigests[0]?.split('@')[1] ?? '';
    for (const [repo, tag] of repoTagPairs(image)) {
      rows.push([
        repo,
        tag,
        ...(options.digests ? [options.noTrunc ? digest : truncateId(digest)] : []),
        options.noTrunc ? image.id : truncateId(image.id),
        humanSize(Number(image.size)),
      ]);
    }
  }
  return formatTable(header, rows);
}

export async function inspectImageCommand(clients: CriClients, names: string[], output: OutputFormat): Promise<string> {
  const results: unknown[] = [];
  for (const name of names) {
    const response = await call(`getting the status of image "${name}"`, () =>
      clients.image.imageStatus({ image: { image: name }, verbose: true }, { timeoutMs: clients.settings.timeoutMs }),
    );
    if (!response.image) throw new Error(`no such image "${name}" present`);
    results.push(withInfo({ status: messageJson(ImageSchema, response.image) }, response.info));
  }
  if (output === 'table') {
    return results.map((r) => formatStructured(r, 'yaml')).join('---\n');
  }
  return results.map((r) => formatStructured(r, output)).join('');
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

export async function imageFsInfoCommand(clients: CriClients, output: OutputFormat): Promise<string> {
  const response = await call('getting image filesystem info', () => clients.image.imageFsInfo({}, { timeoutMs: clients.settings.timeoutMs }));
  if (output === 'table') {
    const rows = response.imageFilesystems.map((fs) => [
      fs.fsId?.mountpoint ?? '',
      humanSize(Number(fs.usedBytes?.value ?? 0n)),
      String(fs.inodesUsed?.value ?? 0n),
    ]);
    return formatTable(['MOUNTPOINT', 'USED', 'INODES'], rows);
  }
  return formatStructured({ status: messageJson(ImageFsInfoResponseSchema, response) }, output);
}

/** crictl's rows per image: one per repo tag, or "<none>" from a repo digest. */
function repoTagPairs(image: Image): Array<[string, string]> {
  if (image.repoTags.length > 0) {
    return image.repoTags.map((t) => {
      const colon = t.lastIndexOf(':');
      return colon > t.lastIndexOf('/') ? [t.slice(0, colon), t.slice(colon + 1)] : [t, '<none>'];
    });
  }
  const name = image.repoDigests[0]?.split('@')[0] ?? '<none>';
  return [[name, '<none>']];
}

/** crictl shows 13 characters of an id, without its "sha256:". */
export function truncateId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 13);
}

/** Go's units.HumanSize: decimal units, four significant digits ("1.235MB"). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(4))}${units[unit]}`;
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
    if ((err as { code?: number }).code === grpcStatus.UNIMPLEMENTED) {
      throw new Error('the runtime does not serve berth.v1.ImageTransfer: image import and export need berthd');
    }
    throw err;
  }
}

function resolvePath(path: string): string {
  return pathResolve(process.cwd(), path);
}
