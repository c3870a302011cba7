// OCI and Docker images built in memory and pushed to a registry over its HTTP API.
// The tar writer is our own (ustar headers, pax or GNU records for what does not fit)
// so that hostile entries (`../x`, `/etc/evil`, links out of the root) reach the
// unpacker byte for byte: tar libraries tend to clean names up, which would hide them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { TestRegistry } from './registry.js';

export type LayerEntry =
  | { type: 'file'; path: string; content: Buffer | string; mode?: number; uid?: number; gid?: number; mtime?: Date; xattrs?: Record<string, string> }
  | { type: 'dir'; path: string; mode?: number; uid?: number; gid?: number; mtime?: Date }
  | { type: 'symlink'; path: string; target: string; uid?: number; gid?: number }
  // mode: what the header says (docker writes the target's); some extractors apply it to the target.
  | { type: 'hardlink'; path: string; target: string; mode?: number }
  | { type: 'char' | 'block'; path: string; major: number; minor: number; mode?: number }
  | { type: 'fifo'; path: string; mode?: number };

export type Compression = 'gzip' | 'zstd' | 'none';
export type ImageFormat = 'oci' | 'docker';

export interface BuiltLayer {
  blob: Buffer;
  /** sha256:… of blob. */
  digest: string;
  /** sha256:… of the uncompressed tar. */
  diffId: string;
  size: number;
  mediaType: string;
  /** The uncompressed tar, for tests that look inside. */
  tar: Buffer;
  compression: Compression;
}

export interface LayerOptions {
  /**
   * How names and link targets longer than 100 bytes are written: a pax 'x' record
   * (default), the ustar prefix field when the name splits at a '/' (pax otherwise), or
   * GNU 'L'/'K' long-name entries. Real images carry all three.
   */
  longNames?: 'pax' | 'ustar' | 'gnu';
}

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  // Not in Docker's schema 2 spec, but containerd names these and accepts them.
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
} as const;

/** Every manifest type, for an Accept header that takes whatever is there. */
export const ACCEPT_ANY_MANIFEST = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.dockerManifest].join(', ');

/** Entries get this mtime when they name none, so the same entries give the same digest. */
export const DEFAULT_MTIME = new Date('2024-01-01T00:00:00Z');

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** node's process.arch in OCI's words (GOARCH). */
export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };
  return map[process.arch] ?? process.arch;
}

// ---- tar ------------------------------------------------------------------------

const BLOCK = 512;
const TYPEFLAG = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;
const DEFAULT_MODE = { file: 0o644, hardlink: 0o644, symlink: 0o777, char: 0o666, block: 0o666, dir: 0o755, fifo: 0o644 } as const;

/** The uncompressed tar of the entries, in their order, names exactly as given. */
export function buildTar(entries: LayerEntry[], options: LayerOptions = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) parts.push(...entryBlocks(entry, options.longNames ?? 'pax'));
  parts.push(Buffer.alloc(2 * BLOCK)); // end of archive
  return Buffer.concat(parts);
}

export function buildLayer(entries: LayerEntry[], compression: Compression = 'gzip', format: ImageFormat = 'oci', options: LayerOptions = {}): BuiltLayer {
  const tar = buildTar(entries, options);
  return layerFromTar(tar, compression, format);
}

/** A layer from a tar made elsewhere (or bytes that are not a tar at all). */
export function layerFromTar(tar: Buffer, compression: Compression = 'gzip', format: ImageFormat = 'oci'): BuiltLayer {
  const blob = compress(tar, compression);
  return { blob, digest: sha256(blob), diffId: sha256(tar), size: blob.length, mediaType: layerMediaType(compression, format), tar, compression };
}

export function layerMediaType(compression: Compression, format: ImageFormat): string {
  if (format === 'oci') return { none: MEDIA_TYPES.ociLayer, gzip: MEDIA_TYPES.ociLayerGzip, zstd: MEDIA_TYPES.ociLayerZstd }[compression];
  return { none: MEDIA_TYPES.dockerLayer, gzip: MEDIA_TYPES.dockerLayerGzip, zstd: MEDIA_TYPES.dockerLayerZstd }[compression];
}

export function compress(data: Buffer, compression: Compression): Buffer {
  switch (compression) {
    case 'none':
      return data;
    case 'gzip':
      return gzipSync(data);
    case 'zstd':
      // node 20's zlib has no zstd; Debian's zstd CLI is the reference implementation.
      try {
        return execFileSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1 << 30 });
      } catch (err) {
        throw new Error(`zstd compression needs the zstd CLI (Debian package zstd): ${(err as Error).message}`);
      }
  }
}

function entryBlocks(entry: LayerEntry, longNames: 'pax' | 'ustar' | 'gnu'): Buffer[] {
  const name = Buffer.from(entry.path);
  const linkname = Buffer.from(entry.type === 'symlink' || entry.type === 'hardlink' ? entry.target : '');
  const content = entry.type === 'file' ? Buffer.from(entry.content) : Buffer.alloc(0);
  const mode = 'mode' in entry && entry.mode !== undefined ? entry.mode : DEFAULT_MODE[entry.type];
  const uid = 'uid' in entry && entry.uid !== undefined ? entry.uid : 0;
  const gid = 'gid' in entry && entry.gid !== undefined ? entry.gid : 0;
  const mtime = Math.floor(('mtime' in entry && entry.mtime ? entry.mtime : DEFAULT_MTIME).getTime() / 1000);
  const device = entry.type === 'char' || entry.type === 'block' ? { major: entry.major, minor: entry.minor } : { major: 0, minor: 0 };

  const pax: Array<[string, Buffer]> = [];
  const blocks: Buffer[] = [];
  let headerName: Buffer = name;
  let prefix: Buffer = Buffer.alloc(0);
  let headerLink: Buffer = linkname;

  if (name.length > 100) {
    const split = longNames === 'ustar' ? splitUstar(name) : undefined;
    if (split) [prefix, headerName] = split;
    else if (longNames === 'gnu') blocks.push(...gnuLongEntry('L', name));
    else pax.push(['path', name]);
    if (!split) headerName = name.subarray(0, 100);
  }
  if (linkname.length > 100) {
    if (longNames === 'gnu') blocks.push(...gnuLongEntry('K', linkname));
    else pax.push(['linkpath', linkname]);
    headerLink = linkname.subarray(0, 100);
  }
  if (entry.type === 'file' && entry.xattrs) {
    for (const [key, value] of Object.entries(entry.xattrs)) pax.push([`SCHILY.xattr.${key}`, Buffer.from(value)]);
  }
  // Numbers beyond the octal fields go to pax too; the header keeps what fits.
  const MAX7 = 0o7777777;
  if (uid > MAX7) pax.push(['uid', Buffer.from(String(uid))]);
  if (gid > MAX7) pax.push(['gid', Buffer.from(String(gid))]);
  if (content.length > 0o77777777777) pax.push(['size', Buffer.from(String(content.length))]);
  if (mtime < 0 || mtime > 0o77777777777) pax.push(['mtime', Buffer.from(String(mtime))]);

  if (pax.length > 0) {
    const records = Buffer.concat(pax.map(([key, value]) => paxRecord(key, value)));
    const paxName = Buffer.from(`PaxHeaders/${posix.basename(entry.path)}`).subarray(0, 100);
    blocks.push(header({ name: paxName, mode: 0o644, uid: 0, gid: 0, size: records.length, mtime: 0, typeflag: 'x', linkname: Buffer.alloc(0), major: 0, minor: 0, prefix: Buffer.alloc(0) }));
    blocks.push(padded(records));
  }
  blocks.push(
    header({
      name: headerName,
      prefix,
      mode,
      uid: Math.min(uid, MAX7),
      gid: Math.min(gid, MAX7),
      size: content.length,
      mtime: Math.min(Math.max(mtime, 0), 0o77777777777),
      typeflag: TYPEFLAG[entry.type],
      linkname: headerLink,
      ...device,
    }),
  );
  if (content.length > 0) blocks.push(padded(content));
  return blocks;
}

/** ustar's split of a long name into prefix (≤155) '/' name (≤100), when there is one. */
function splitUstar(name: Buffer): [Buffer, Buffer] | undefined {
  if (name.length > 256) return undefined;
  for (let i = Math.min(name.length - 1, 155); i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    const rest = name.subarray(i + 1);
    if (rest.length === 0) continue; // a trailing slash: the name part may not be empty
    if (rest.length > 100) return undefined;
    return [name.subarray(0, i), rest];
  }
  return undefined;
}

/** GNU's ././@LongLink entry carrying the next entry's long name ('L') or link ('K'). */
function gnuLongEntry(typeflag: 'L' | 'K', value: Buffer): Buffer[] {
  const data = Buffer.concat([value, Buffer.alloc(1)]);
  return [
    header({ name: Buffer.from('././@LongLink'), mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0, typeflag, linkname: Buffer.alloc(0), major: 0, minor: 0, prefix: Buffer.alloc(0), gnu: true }),
    padded(data),
  ];
}

/** "LEN key=value\n", where LEN counts the whole record including its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

interface HeaderFields {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
  major: number;
  minor: number;
  /** GNU magic ("ustar  \0") instead of POSIX ustar's. */
  gnu?: boolean;
}

function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(BLOCK);
  f.name.copy(h, 0, 0, 100);
  octal(h, 100, 8, f.mode & 0o7777);
  octal(h, 108, 8, f.uid);
  octal(h, 116, 8, f.gid);
  octal(h, 124, 12, f.size);
  octal(h, 136, 12, f.mtime);
  h.write(f.typeflag, 156, 'latin1');
  f.linkname.copy(h, 157, 0, 100);
  h.write(f.gnu ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  octal(h, 329, 8, f.major);
  octal(h, 337, 8, f.minor);
  f.prefix.copy(h, 345, 0, 155);
  // The checksum is taken with its own field as spaces, then written "%06o\0 ".
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** A zero-padded octal number filling width-1 digits and a NUL. */
function octal(h: Buffer, offset: number, width: number, value: number): void {
  h.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, 'latin1');
}

function padded(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}

// ---- busybox --------------------------------------------------------------------

export const BUSYBOX = '/bin/busybox';

/** The applets linked in busyboxEntries' bin/. */
export const BUSYBOX_APPLETS = [
  'sh', 'echo', 'cat', 'ls', 'sleep', 'id', 'env', 'pwd', 'touch', 'mkdir', 'uname', 'ping', 'wc', 'head', 'tail',
  'grep', 'true', 'false', 'hostname', 'stat', 'readlink', 'nc', 'wget', 'mount', 'umount', 'cut', 'tr', 'sort',
  'ps', 'kill', 'rm', 'cp', 'mv', 'ln', 'chmod', 'chown', 'test', '[', 'printf', 'date', 'whoami', 'df', 'du',
  'sed', 'awk', 'tee', 'find', 'xargs', 'dd', 'sync', 'timeout', 'nslookup', 'ip', 'ifconfig', 'dmesg', 'free',
  'top', 'seq', 'basename', 'dirname', 'realpath', 'md5sum', 'sha256sum', 'vi', 'less', 'tar', 'gzip', 'mkfifo',
  'mknod', 'nproc', 'uptime', 'which', 'yes', 'usleep', 'setsid', 'nsenter', 'unshare',
];

/**
 * A minimal root: Debian's static busybox as bin/busybox with applet symlinks, users
 * and groups, and the usual directories. Names are relative ("bin/sh", dirs with a
 * trailing slash) as docker and buildkit write them.
 */
export function busyboxEntries(): LayerEntry[] {
  let busybox: Buffer;
  try {
    busybox = readFileSync(BUSYBOX);
  } catch (err) {
    throw new Error(`busyboxEntries needs ${BUSYBOX} (Debian package busybox-static): ${(err as Error).message}`);
  }
  const dirs: LayerEntry[] = [
    { type: 'dir', path: 'bin/' },
    { type: 'dir', path: 'dev/' },
    { type: 'dir', path: 'etc/' },
    { type: 'dir', path: 'home/' },
    { type: 'dir', path: 'home/app/', uid: 1000, gid: 1000 },
    { type: 'dir', path: 'proc/', mode: 0o555 },
    { type: 'dir', path: 'root/', mode: 0o700 },
    { type: 'dir', path: 'sys/', mode: 0o555 },
    { type: 'dir', path: 'tmp/', mode: 0o1777 },
    { type: 'dir', path: 'usr/' },
    { type: 'dir', path: 'var/' },
  ];
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
    'app:x:1000:1000:app:/home/app:/bin/sh',
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
    '',
  ].join('\n');
  const group = ['root:x:0:', 'daemon:x:1:', 'app:x:1000:', 'extra:x:2000:app', 'nogroup:x:65534:', ''].join('\n');
  return [
    ...dirs,
    { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...BUSYBOX_APPLETS.map((applet): LayerEntry => ({ type: 'symlink', path: `bin/${applet}`, target: 'busybox' })),
    { type: 'file', path: 'etc/passwd', content: passwd },
    { type: 'file', path: 'etc/group', content: group },
  ];
}

// ---- images and the registry API ------------------------------------------------

export interface ImageConfigInput {
  Entrypoint?: string[];
  Cmd?: string[];
  /** Defaults to a PATH line; pass [] for no environment at all. */
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
}

export interface PushedImage {
  manifestDigest: string;
  manifestSize: number;
  /** The manifest's own media type (OCI manifest or Docker schema 2). */
  mediaType: string;
  configDigest: string;
  manifest: Buffer;
  config: Buffer;
  layers: BuiltLayer[];
}

export type RegistryAuth = { user: string; password: string } | { bearer: string };

export interface ImageInput {
  layers: BuiltLayer[];
  config?: ImageConfigInput;
  architecture?: string;
  os?: string;
  variant?: string;
  format?: ImageFormat;
  auth?: RegistryAuth;
}

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const CREATED = '2024-01-01T00:00:00Z';

/** The image config JSON, as a registry would serve it. */
export function imageConfig(image: Omit<ImageInput, 'auth' | 'format'>): Buffer {
  const config: Record<string, unknown> = { ...image.config, Env: image.config?.Env ?? [DEFAULT_PATH_ENV] };
  const json = {
    created: CREATED,
    architecture: image.architecture ?? hostArchitecture(),
    ...(image.variant ? { variant: image.variant } : {}),
    os: image.os ?? 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: image.layers.map((l) => l.diffId) },
    history: image.layers.map((l, i) => ({ created: CREATED, created_by: `berth test layer ${i} (${l.compression})` })),
  };
  return Buffer.from(JSON.stringify(json));
}

export async function pushImage(registry: TestRegistry, repo: string, tag: string | undefined, image: ImageInput): Promise<PushedImage> {
  const format = image.format ?? 'oci';
  const config = imageConfig(image);
  const configMediaType = format === 'oci' ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig;
  const mediaType = format === 'oci' ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest;
  const configDigest = await pushBlob(registry, repo, config, image.auth);
  for (const layer of image.layers) await pushBlob(registry, repo, layer.blob, image.auth);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: configMediaType, digest: configDigest, size: config.length },
      layers: image.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await pushManifest(registry, repo, tag ?? sha256(manifest), manifest, mediaType, image.auth);
  return { manifestDigest, manifestSize: manifest.length, mediaType, configDigest, manifest, config, layers: image.layers };
}

export async function pushIndex(
  registry: TestRegistry,
  repo: string,
  tag: string,
  manifests: Array<{ image: PushedImage; platform: { architecture: string; os: string; variant?: string } }>,
  format: ImageFormat = 'oci',
  auth?: RegistryAuth,
): Promise<{ digest: string; size: number; mediaType: string; body: Buffer }> {
  const mediaType = format === 'oci' ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList;
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: manifests.map(({ image, platform }) => ({
        mediaType: image.mediaType,
        digest: image.manifestDigest,
        size: image.manifestSize,
        platform: { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}) },
      })),
    }),
  );
  const digest = await pushManifest(registry, repo, tag, body, mediaType, auth);
  return { digest, size: body.length, mediaType, body };
}

export function authHeader(auth?: RegistryAuth): Record<string, string> {
  if (!auth) return {};
  if ('bearer' in auth) return { Authorization: `Bearer ${auth.bearer}` };
  return { Authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}` };
}

/** Uploads a blob (monolithic: POST then PUT ?digest=) unless it is there; returns its digest. */
export async function pushBlob(registry: TestRegistry, repo: string, data: Buffer, auth?: RegistryAuth): Promise<string> {
  const digest = sha256(data);
  const head = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: authHeader(auth) });
  if (head.status === 200) return digest;
  const start = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: authHeader(auth) });
  await expectStatus(start, 202, `starting the upload of ${digest} to ${repo}`);
  const location = start.headers.get('location');
  if (!location) throw new Error(`registry gave no Location for the upload of ${digest}`);
  const target = new URL(location, registry.url);
  target.searchParams.set('digest', digest);
  const put = await fetch(target, {
    method: 'PUT',
    headers: { ...authHeader(auth), 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  await expectStatus(put, 201, `uploading ${digest} to ${repo}`);
  return digest;
}

/** PUTs a manifest or index under a tag or digest; returns the digest the registry reports. */
export async function pushManifest(registry: TestRegistry, repo: string, reference: string, body: Buffer, mediaType: string, auth?: RegistryAuth): Promise<string> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { ...authHeader(auth), 'Content-Type': mediaType },
    body,
  });
  await expectStatus(res, 201, `putting manifest ${repo}:${reference} (${mediaType})`);
  const digest = sha256(body);
  const reported = res.headers.get('docker-content-digest');
  if (reported && reported !== digest) throw new Error(`registry says manifest ${repo}:${reference} is ${reported}, its bytes are ${digest}`);
  return digest;
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} (expected ${status}): ${text.slice(0, 500)}`);
}
