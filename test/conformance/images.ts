// Every image critest v1.37.0 pulls (validation suite and benchmarks), built here from a
// static busybox and small static stand-in programs, and pushed to a local registry
// under the upstream repository path and tag. Layers are built in memory by
// test/helpers/image-builder.ts: sorted names, fixed mtime, owner 0:0, gzip without a
// name or time, so every run gives the same digests.
//
// What each image must do comes from cri-tools' pkg/validate and images/ (see
// critest-offline.md): busybox with hard-linked applets; nginx (comm "nginx", cmdline
// "nginx: master process nginx -g daemon off;", /var/run/nginx.pid, HTTP on 80); the
// hostnet nginx on 12003; httpd's "Command line: 'httpd -D FOREGROUND'" log line and
// HTTP on 80; a setuid-root nonewprivs printing "Effective uid: N"; the USER images;
// test-image-* images that differ by one empty file named after themselves.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildLayer, hostArchitecture, pushImage, type BuiltLayer, type ImageConfigInput, type LayerEntry } from '../helpers/image-builder.js';
import type { TestRegistry } from '../helpers/registry.js';

export interface ImageInputs {
  /** Dir with `busybox` (static, full applet set) and `applets` (its --list-full). */
  busyboxDir: string;
  /** Dir with the stand-ins: nginx, nginx-hostnet, httpd, nonewprivs. */
  standinsDir: string;
  /** The pod init for containerd's sandbox image (Debian's static catatonit). */
  catatonit: string;
}

export interface ImageSpec {
  /** Upstream references (host/path:tag) this image is pushed under. */
  refs: string[];
  layers: BuiltLayer[];
  config: ImageConfigInput;
}

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The sandbox image containerd is configured with (not a name critest uses). */
export const CONTAINERD_SANDBOX_IMAGE = 'registry.k8s.io/pause:berth-conformance';

/** The upstream registry hosts the images live on; each gets a mirror to ours. */
export const UPSTREAM_HOSTS = ['registry.k8s.io', 'k8s.gcr.io', 'gcr.io', 'public.ecr.aws', 'docker.io'];

// Users and groups of upstream busybox's /etc/passwd and /etc/group (www-data is 33).
const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'bin:x:2:2:bin:/bin:/bin/false',
  'sys:x:3:3:sys:/dev:/bin/false',
  'sync:x:4:100:sync:/bin:/bin/sync',
  'mail:x:8:8:mail:/var/spool/mail:/bin/false',
  'www-data:x:33:33:www-data:/var/www:/bin/false',
  'operator:x:37:37:Operator:/var:/bin/false',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
];
const GROUP = [
  'root:x:0:', 'daemon:x:1:', 'bin:x:2:', 'sys:x:3:', 'adm:x:4:', 'tty:x:5:', 'disk:x:6:', 'lp:x:7:', 'mail:x:8:',
  'kmem:x:9:', 'wheel:x:10:root', 'cdrom:x:11:', 'dialout:x:18:', 'floppy:x:19:', 'video:x:28:', 'audio:x:29:',
  'tape:x:32:', 'www-data:x:33:', 'operator:x:37:', 'utmp:x:43:', 'plugdev:x:46:', 'staff:x:50:', 'lock:x:54:',
  'netdev:x:82:', 'users:x:100:', 'nogroup:x:65534:',
];

const lines = (l: string[]): string => `${l.join('\n')}\n`;

/** The busybox root: bin/busybox and every applet as a hard link to it. */
function busyboxLayer(dir: string, extraPasswd: string[] = [], extraGroup: string[] = []): BuiltLayer {
  const binary = readFileSync(join(dir, 'busybox'));
  // Every applet that lives in a directory (not /linuxrc, busybox's initrd entry).
  const applets = readFileSync(join(dir, 'applets'), 'utf8').split('\n').filter((a) => a.includes('/') && a !== 'bin/busybox');
  const dirs = new Set(['bin/', 'dev/', 'etc/', 'home/', 'proc/', 'root/', 'sys/', 'tmp/', 'usr/', 'usr/bin/', 'usr/sbin/', 'sbin/', 'var/', 'var/run/', 'var/www/']);
  for (const applet of applets) dirs.add(applet.slice(0, applet.lastIndexOf('/') + 1));
  const modes: Record<string, number> = { 'proc/': 0o555, 'sys/': 0o555, 'root/': 0o700, 'tmp/': 0o1777 };
  const entries: LayerEntry[] = [
    ...[...dirs].sort().map((path): LayerEntry => ({ type: 'dir', path, mode: modes[path] ?? 0o755 })),
    { type: 'file', path: 'etc/group', content: lines([...GROUP, ...extraGroup]) },
    { type: 'file', path: 'etc/passwd', content: lines([...PASSWD, ...extraPasswd]) },
    // The file before its links: a hard link may only name an entry already written.
    { type: 'file', path: 'bin/busybox', content: binary, mode: 0o755 },
    // Headers with the file's own mode, as docker writes them: containerd chmods the
    // link (the one inode) to the header's mode when it can stat the target name.
    ...applets.sort().map((path): LayerEntry => ({ type: 'hardlink', path, target: 'bin/busybox', mode: 0o755 })),
  ];
  return buildLayer(entries);
}

/** A layer of a few files (their parent dirs included), sorted by name. */
function filesLayer(files: Array<{ path: string; content: Buffer | string; mode?: number }>): BuiltLayer {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.path.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(`${parts.slice(0, i).join('/')}/`);
  }
  const entries: LayerEntry[] = [
    ...[...dirs].sort().map((path): LayerEntry => ({ type: 'dir', path })),
    ...[...files].sort((a, b) => (a.path < b.path ? -1 : 1)).map((f): LayerEntry => ({ type: 'file', path: f.path, content: f.content, mode: f.mode ?? 0o644 })),
  ];
  return buildLayer(entries);
}

export function conformanceImages(inputs: ImageInputs): ImageSpec[] {
  const base = busyboxLayer(inputs.busyboxDir);
  const standin = (name: string): Buffer => readFileSync(join(inputs.standinsDir, name));
  const shell: ImageConfigInput = { Cmd: ['sh'], Env: [PATH_ENV] };
  const e2e = 'registry.k8s.io/e2e-test-images';
  const staging = 'gcr.io/k8s-staging-cri-tools';
  const ecr = 'public.ecr.aws/docker/library';
  const images: ImageSpec[] = [];

  // The default test container image, and the benchmarks' listing/pulling images.
  images.push({
    refs: [`${e2e}/busybox:1.29-2`, ...['1.35.0-glibc', '1-uclibc', '1', '1-glibc', '1-musl'].map((t) => `${ecr}/busybox:${t}`)],
    layers: [base],
    config: shell,
  });

  const html = '<html><body><h1>Welcome to nginx!</h1></body></html>\n';
  images.push({
    refs: [`${e2e}/nginx:1.14-2`],
    layers: [base, filesLayer([{ path: 'usr/sbin/nginx', content: standin('nginx'), mode: 0o755 }, { path: 'usr/share/nginx/html/index.html', content: html }])],
    config: { Cmd: ['nginx', '-g', 'daemon off;'], Env: [PATH_ENV], ExposedPorts: { '80/tcp': {} }, StopSignal: 'SIGTERM' },
  });
  images.push({
    refs: [`${staging}/hostnet-nginx-${hostArchitecture()}:latest`],
    layers: [base, filesLayer([{ path: 'usr/sbin/nginx', content: standin('nginx-hostnet'), mode: 0o755 }, { path: 'usr/share/nginx/html/index.html', content: html }])],
    config: { Cmd: ['nginx', '-g', 'daemon off;'], Env: [PATH_ENV], ExposedPorts: { '12003/tcp': {} }, StopSignal: 'SIGQUIT' },
  });
  images.push({
    refs: [`${e2e}/httpd:2.4.39-4`],
    layers: [base, filesLayer([{ path: 'usr/local/apache2/bin/httpd', content: standin('httpd'), mode: 0o755 }, { path: 'usr/local/apache2/htdocs/index.html', content: '<html><body><h1>It works!</h1></body></html>\n' }])],
    config: { Cmd: ['httpd', '-D', 'FOREGROUND'], Env: [`PATH=/usr/local/apache2/bin:${PATH_ENV.slice(5)}`], WorkingDir: '/usr/local/apache2', ExposedPorts: { '80/tcp': {} }, StopSignal: 'SIGWINCH' },
  });
  images.push({
    refs: [`${e2e}/nonewprivs:1.3`],
    layers: [base, filesLayer([{ path: 'usr/local/bin/nnp', content: standin('nonewprivs'), mode: 0o4755 }])],
    config: { Entrypoint: ['/usr/local/bin/nnp'], Env: [PATH_ENV] },
  });

  // USER images (images/image-user): busybox with only the config's User set.
  for (const [name, user] of [
    ['test-image-user-uid', '1002'],
    ['test-image-user-username', 'www-data'],
    ['test-image-user-uid-group', '1003:1004'],
    ['test-image-user-username-group', 'www-data:1004'],
  ] as const) {
    images.push({ refs: [`${staging}/${name}:latest`], layers: [base], config: { ...shell, User: user } });
  }
  // images/image-predefined-group: default-user (1000) in group-defined-in-image (50000).
  images.push({
    refs: [`${staging}/test-image-predefined-group:latest`],
    layers: [
      busyboxLayer(
        inputs.busyboxDir,
        ['default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh'],
        ['default-user:x:1000:', 'group-defined-in-image:x:50000:default-user'],
      ),
    ],
    config: { ...shell, User: '1000' },
  });

  // images/image-test: busybox plus an empty file named after the image. test-image-digest
  // is built too, though its upstream digest can never match (the digest spec is skipped).
  const marked = (file: string): BuiltLayer[] => [base, filesLayer([{ path: file, content: '' }])];
  for (const name of ['test-image-1', 'test-image-2', 'test-image-3', 'test-image-latest', 'test-image-digest']) {
    images.push({ refs: [`${staging}/${name}:latest`], layers: marked(name), config: shell });
  }
  images.push({ refs: [1, 2, 3].map((t) => `${staging}/test-image-tags:${t}`), layers: marked('same-image'), config: shell });
  images.push({ refs: [`${staging}/test-image-tag:test`], layers: marked('test-image-tag-test'), config: shell });
  images.push({ refs: [`${staging}/test-image-tag:all`], layers: marked('test-image-tag-all'), config: shell });

  // The same pause image under two registries (Image Identifier Consistency), and as
  // containerd's sandbox image: Debian's static catatonit, as upstream's pause would be.
  // The sandbox image is a distinct image (a label apart): critest counts pause:3.9's tags.
  const pause = filesLayer([{ path: 'catatonit', content: readFileSync(inputs.catatonit), mode: 0o755 }]);
  const pauseConfig: ImageConfigInput = { Entrypoint: ['/catatonit', '-P'], Env: [PATH_ENV], User: '65535:65535' };
  images.push({ refs: ['registry.k8s.io/pause:3.9', 'k8s.gcr.io/pause:3.9'], layers: [pause], config: pauseConfig });
  images.push({ refs: [CONTAINERD_SANDBOX_IMAGE], layers: [pause], config: { ...pauseConfig, Labels: { 'berth.conformance': 'containerd sandbox image' } } });
  return images;
}

/** "registry.k8s.io/e2e-test-images/busybox:1.29-2" → repository path and tag. */
export function splitReference(ref: string): { host: string; repo: string; tag: string } {
  const slash = ref.indexOf('/');
  const host = ref.slice(0, slash);
  const rest = ref.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  let repo = rest.slice(0, colon);
  // docker.io's one-word names live under library/, on the mirror too.
  if (host === 'docker.io' && !repo.includes('/')) repo = `library/${repo}`;
  return { host, repo, tag: rest.slice(colon + 1) };
}

/** Pushes every image under every one of its references; returns "ref digest" lines. */
export async function pushConformanceImages(registry: TestRegistry, images: ImageSpec[]): Promise<string[]> {
  const pushed: string[] = [];
  for (const image of images) {
    for (const ref of image.refs) {
      const { repo, tag } = splitReference(ref);
      const result = await pushImage(registry, repo, tag, { layers: image.layers, config: image.config });
      pushed.push(`${ref} ${result.manifestDigest}`);
    }
  }
  return pushed;
}
