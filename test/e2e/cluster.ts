// A one-node Kubernetes cluster on berth: etcd, kube-apiserver (loopback only, its own
// certificates), kube-scheduler, kube-controller-manager (service-account tokens signed
// by the key the script makes) and a kubelet on a private berthd registering its node,
// driven by kubectl: node Ready with berth's runtime version, kubectl run/logs/logs -f/
// delete, a Deployment scaled 1→5→0, a Job, exec -it/exec -i/attach/port-forward, and a
// PersistentVolume on berth-csi (registered with the kubelet through its plugin
// registration socket) mounted by a pod. Everything is removed at the end, and what is
// left on the host is checked first. Prints the checks, every CRI call berthd failed or
// did not implement and the kubelet's warnings.
// Driven by scripts/e2e-kubelet.sh (which builds the binaries and restores the kernel
// settings the kubelet rewrites).
//   node dist/test/e2e/cluster.js --kube DIR [--out DIR]
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Scope } from '../helpers/scope.js';
import { startBerthd, runBerthctl } from '../helpers/berthd.js';
import { startBerthCsi, loopDevicesUnder } from '../helpers/berth-csi.js';
import { startPodNetwork } from '../helpers/pod-network.js';
import { freePort, startRegistry } from '../helpers/registry.js';
import { buildLayer, busyboxEntries, pushImage } from '../helpers/image-builder.js';
import { run, stopProcess, type RunResult } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { baseKubeletConfig, cgroupsBelow, closeOnSignals, failedRpcs, klogWarnings, makeCgroupRoot, mountsUnder, processesBelow, progressLog, removeCgroups, waitFor } from '../helpers/kube-host.js';
import { makeClusterPki, writeKubeconfig } from '../helpers/kube-pki.js';
import { VolumeCapability_AccessMode_Mode as Mode } from '../../src/gen/csi/v1/csi_pb.js';

const { values: args } = parseArgs({ options: { kube: { type: 'string' }, out: { type: 'string' } } });
if (!args.kube) {
  process.stderr.write('usage: cluster.js --kube DIR [--out DIR]\n');
  process.exit(2);
}
const KUBE = args.kube;
const NODE = 'berth-e2e-node';
const DRIVER = 'berth.csi.local';
const log = progressLog(Date.now());

interface Check {
  id: string;
  ok: boolean;
  detail: string;
}
const checks: Check[] = [];
function add(id: string, ok: boolean, detail = ''): boolean {
  checks.push({ id, ok, detail });
  log(`${ok ? 'PASS' : 'FAIL'} ${id}${detail ? `: ${detail}` : ''}`);
  return ok;
}
async function check(id: string, fn: () => Promise<string | [boolean, string]>): Promise<boolean> {
  try {
    const r = await fn();
    return typeof r === 'string' ? add(id, true, r) : add(id, r[0], r[1]);
  } catch (err) {
    return add(id, false, (err as Error).message.split('\n').slice(0, 4).join(' | '));
  }
}

// ---- processes -----------------------------------------------------------------------

interface Daemon {
  child: ChildProcess;
  logs(): string;
}

/** Starts a control-plane program or the kubelet; its output goes to OUT/<name>.log. */
async function daemon(scope: Scope, outDir: string, name: string, bin: string, argv: string[], env?: NodeJS.ProcessEnv): Promise<Daemon> {
  const file = createWriteStream(join(outDir, `${name}.log`));
  const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let text = '';
  const onData = (d: Buffer) => {
    if (text.length < 32 * 1024 * 1024) text += d.toString();
    file.write(d);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  if (process.env.E2E_PIDFILE_DIR) await writeFile(join(process.env.E2E_PIDFILE_DIR, `cluster-${name}.pid`), `${child.pid}\n`);
  scope.after(async () => {
    await stopProcess(child, 'SIGTERM', 15_000);
    file.end();
  });
  return { child, logs: () => text };
}

function exitedMessage(name: string, d: Daemon): string | undefined {
  if (d.child.exitCode === null && d.child.signalCode === null) return undefined;
  return `${name} exited ${d.child.exitCode ?? d.child.signalCode}: ${d.logs().split('\n').filter((l) => /^[EF]\d{4}|error|Error/.test(l)).slice(-3).join(' | ')}`;
}

// ---- kubectl -------------------------------------------------------------------------

let kubeconfig = '';
function kubectl(argv: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(join(KUBE, 'kubectl'), argv, { env: { PATH: process.env.PATH, KUBECONFIG: kubeconfig, HOME: '/nonexistent' }, input: options.input, timeoutMs: options.timeoutMs ?? 60_000 });
}
async function k(argv: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await kubectl(argv, options);
  if (r.code !== 0) throw new Error(`kubectl ${argv.join(' ')}: exit ${r.code ?? r.signal}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 400)}`);
  return r.stdout;
}
async function kjson<T>(argv: string[]): Promise<T> {
  return JSON.parse(await k([...argv, '-o', 'json'])) as T;
}
const apply = (obj: object) => k(['apply', '-f', '-'], { input: JSON.stringify(obj) });

interface KPod {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { nodeName?: string };
  status?: { phase?: string; conditions?: Array<{ type: string; status: string }>; containerStatuses?: Array<{ ready: boolean; state?: Record<string, { reason?: string; exitCode?: number }> }> };
}
const podReady = (p: KPod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

async function waitPodReady(name: string, timeoutMs = 120_000): Promise<KPod> {
  return waitFor(`pod ${name} Ready`, timeoutMs, async () => {
    const p = await kjson<KPod>(['get', 'pod', name]);
    return podReady(p) ? p : undefined;
  }, 1000);
}

// ---- pods ----------------------------------------------------------------------------

function pod(name: string, image: string, command: string[], extra: { container?: object; spec?: object } = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      dnsPolicy: 'Default',
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [{ name, image, imagePullPolicy: 'IfNotPresent', command, ...extra.container }],
      ...extra.spec,
    },
  };
}

// ---- main ----------------------------------------------------------------------------

async function main(): Promise<number> {
  const scope = new Scope();
  closeOnSignals(scope, log);
  let berthdLogs = () => '';
  let kubeletLogs = () => '';
  let outDir = '';
  try {
    outDir = args.out ?? (await tempDir(scope, 'e2e-cluster-out-'));
    await mkdir(outDir, { recursive: true });
    const version = (await run(join(KUBE, 'kube-apiserver'), ['--version'])).stdout.trim();
    log(`==== one-node cluster (${version}) on berth; logs in ${outDir} ====`);

    // ---- images, network, runtime, CSI driver ----
    const registry = await startRegistry(scope);
    await pushImage(registry, 'e2e/busybox', '1', { layers: [buildLayer(busyboxEntries(), 'gzip', 'docker')], format: 'docker', config: { Cmd: ['sh'] } });
    const image = `${registry.host}/e2e/busybox:1`;
    const network = await startPodNetwork(scope);
    const berthd = await startBerthd(scope, { cniConfDir: network.confDir, logLevel: 'debug' });
    berthdLogs = berthd.logs;
    scope.after(() => writeFile(join(outDir, 'berthd.log'), berthd.logs()));
    const csi = await startBerthCsi(scope, NODE);
    scope.after(() => writeFile(join(outDir, 'berth-csi.log'), csi.logs()));

    // ---- PKI, etcd, control plane ----
    const dir = await tempDir(scope, 'e2e-cluster-');
    const pkiDir = join(dir, 'pki');
    await mkdir(pkiDir);
    const pki = await makeClusterPki(pkiDir, {
      admin: '/O=system:masters/CN=berth-e2e-admin',
      node: `/O=system:nodes/CN=system:node:${NODE}`,
      'kubelet-client': '/O=system:masters/CN=kube-apiserver-kubelet-client',
    });
    const [etcdPort, etcdPeerPort, apiPort, cmPort, schedPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = await daemon(scope, outDir, 'etcd', join(KUBE, 'etcd'), [
      '--name', 'berth-e2e', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-cluster', `berth-e2e=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync', '--quota-backend-bytes', String(256 * 1024 * 1024), '--log-level', 'warn',
    ]);
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = await daemon(scope, outDir, 'kube-apiserver', join(KUBE, 'kube-apiserver'), [
      '--etcd-servers', etcdUrl,
      '--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1', '--secure-port', String(apiPort),
      '--cert-dir', join(dir, 'apiserver-certs'),
      '--tls-cert-file', pki.server.cert, '--tls-private-key-file', pki.server.key, '--client-ca-file', pki.caCert,
      '--service-account-key-file', pki.saPub, '--service-account-signing-key-file', pki.saKey,
      '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range', '10.0.0.0/24',
      // The kubernetes service's endpoint would be 127.0.0.1, which EndpointSlices refuse.
      '--endpoint-reconciler-type', 'none',
      '--authorization-mode', 'Node,RBAC', '--allow-privileged',
      '--kubelet-client-certificate', pki.clients['kubelet-client']!.cert, '--kubelet-client-key', pki.clients['kubelet-client']!.key,
      '--kubelet-preferred-address-types', 'InternalIP',
      '--enable-priority-and-fairness=false', '--profiling=false', '--v=1',
    ]);
    kubeconfig = await writeKubeconfig(join(dir, 'admin.kubeconfig'), server, pki.caCert, pki.clients.admin!, 'admin');
    const nodeKubeconfig = await writeKubeconfig(join(dir, 'node.kubeconfig'), server, pki.caCert, pki.clients.node!, NODE);
    const up = await check('control plane: etcd and kube-apiserver ready (/readyz)', async () => {
      const t = Date.now();
      await waitFor('kube-apiserver /readyz', 180_000, async () => {
        const dead = exitedMessage('etcd', etcd) ?? exitedMessage('kube-apiserver', apiserver);
        if (dead) throw new Error(dead);
        return (await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 5000 })).stdout.trim() === 'ok';
      });
      return `ready ${((Date.now() - t) / 1000).toFixed(1)}s after start`;
    });
    if (!up) return await finish();
    const common = ['--kubeconfig', kubeconfig, '--authentication-kubeconfig', kubeconfig, '--authorization-kubeconfig', kubeconfig, '--bind-address', '127.0.0.1', '--leader-elect=false'];
    const cm = await daemon(scope, outDir, 'kube-controller-manager', join(KUBE, 'kube-controller-manager'), [
      ...common, '--secure-port', String(cmPort),
      // Service-account tokens: the token controller (legacy secrets) and the root CA
      // published for projected token volumes; the kubelet asks for bound tokens.
      '--service-account-private-key-file', pki.saKey, '--root-ca-file', pki.caCert,
      '--use-service-account-credentials=false', '--v=1',
    ]);
    const scheduler = await daemon(scope, outDir, 'kube-scheduler', join(KUBE, 'kube-scheduler'), [...common, '--secure-port', String(schedPort), '--v=1']);

    // ---- the kubelet on berth ----
    const kdir = await tempDir(scope, 'e2e-cluster-kubelet-');
    const rootDir = join(kdir, 'root');
    const podLogs = join(kdir, 'pod-logs');
    for (const d of [rootDir, join(kdir, 'pki'), podLogs, join(rootDir, 'plugins_registry')]) await mkdir(d, { recursive: true });
    const cgroupRoot = `berth-e2e-cluster-${randomBytes(3).toString('hex')}`;
    await makeCgroupRoot(cgroupRoot);
    scope.after(() => removeCgroups(cgroupRoot));
    // The node's address: the kubelet refuses a loopback node IP (127/8), and the API
    // server must reach the kubelet at the node's address. An address of the run's own on
    // the host's lo (198.18.0.0/15, benchmarking space) is neither, and nothing off this
    // host can reach it. (This kernel has no dummy links.)
    const nodeIp = `198.18.${(randomBytes(1)[0]! % 250) + 2}.${(randomBytes(1)[0]! % 250) + 2}`;
    const added = await run('ip', ['addr', 'add', `${nodeIp}/32`, 'dev', 'lo']);
    if (added.code !== 0) throw new Error(`ip addr add ${nodeIp}/32 dev lo: ${added.stderr.trim()}`);
    scope.after(() => run('ip', ['addr', 'del', `${nodeIp}/32`, 'dev', 'lo']));
    const [kPort, healthzPort] = [await freePort(), await freePort()];
    const config = {
      ...(await baseKubeletConfig({ dir: kdir, cgroupRoot, endpoint: berthd.endpoint, podLogsDir: podLogs })),
      address: nodeIp,
      port: kPort,
      readOnlyPort: 0,
      healthzPort,
      // The API server reaches the kubelet (logs, exec, attach, port-forward) with a
      // client certificate of the cluster's CA.
      authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: pki.caCert } },
      authorization: { mode: 'AlwaysAllow' },
      clusterDomain: 'cluster.local',
      registerNode: true,
      nodeStatusUpdateFrequency: '4s',
    };
    const configPath = join(kdir, 'kubelet.json');
    await writeFile(configPath, JSON.stringify(config, null, 1));
    const kubelet = await daemon(scope, outDir, 'kubelet', join(KUBE, 'kubelet'), [
      '--config', configPath, '--kubeconfig', nodeKubeconfig, '--root-dir', rootDir, '--cert-dir', join(kdir, 'pki'),
      '--hostname-override', NODE, '--node-ip', nodeIp, '--v=2',
    ]);
    kubeletLogs = kubelet.logs;
    // The CSI driver's registration with the kubelet (pluginregistration.v1).
    const registrar = await daemon(scope, outDir, 'csi-registrar', join(KUBE, 'csi-registrar'), [
      '-driver-name', DRIVER, '-csi-address', csi.socket, '-registration-dir', join(rootDir, 'plugins_registry'),
    ]);

    interface KNode {
      status: { conditions: Array<{ type: string; status: string; reason?: string }>; nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string }; addresses: Array<{ type: string; address: string }> };
      spec: { taints?: Array<{ key: string }> };
    }
    const nodeUp = await check('kubectl get node: Ready, runtime berth://', async () => {
      const t = Date.now();
      const node = await waitFor('node Ready', 180_000, async () => {
        const dead = exitedMessage('kubelet', kubelet) ?? exitedMessage('kube-controller-manager', cm) ?? exitedMessage('kube-scheduler', scheduler);
        if (dead) throw new Error(dead);
        const n = await kjson<KNode>(['get', 'node', NODE]);
        return n.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True') && !(n.spec.taints ?? []).length ? n : undefined;
      }, 2000);
      const table = (await k(['get', 'node', '-o', 'wide'])).trim().split('\n');
      const rv = node.status.nodeInfo.containerRuntimeVersion;
      return [rv.startsWith('berth://'), `Ready ${((Date.now() - t) / 1000).toFixed(1)}s after the kubelet started; runtime ${rv}, kubelet ${node.status.nodeInfo.kubeletVersion}; ${table.map((l) => l.replace(/\s+/g, ' ')).join(' / ')}`];
    });
    if (!nodeUp) return await finish();
    await waitFor('the default service account', 60_000, async () => (await kubectl(['get', 'serviceaccount', 'default'])).code === 0);

    // ---- kubectl run, logs, logs -f, delete ----
    await check('kubectl run; logs; delete', async () => {
      await k(['run', 'hello', `--image=${image}`, '--restart=Never', '--image-pull-policy=IfNotPresent', '--command', '--', 'sh', '-c', 'echo hello from berth; sleep 3600']);
      const t = Date.now();
      const p = await waitPodReady('hello');
      const readyIn = (Date.now() - t) / 1000;
      const logs = (await k(['logs', 'hello'])).trim();
      const tok = (await k(['exec', 'hello', '--', 'sh', '-c', 'wc -c < /var/run/secrets/kubernetes.io/serviceaccount/token; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace'])).trim().split('\n');
      const d = Date.now();
      await k(['delete', 'pod', 'hello', '--grace-period=1', '--wait=true'], { timeoutMs: 90_000 });
      const gone = (await kubectl(['get', 'pod', 'hello'])).code !== 0;
      return [logs === 'hello from berth' && gone && Number(tok[0]) > 100 && tok[1] === 'default', `Ready in ${readyIn.toFixed(1)}s on ${p.spec?.nodeName}; logs "${logs}"; service-account token ${tok[0]} bytes, namespace ${tok[1]}; deleted in ${((Date.now() - d) / 1000).toFixed(1)}s, gone: ${gone}`];
    });
    await check('kubectl logs -f follows until the container exits', async () => {
      await apply(pod('follow', image, ['sh', '-c', 'for i in 1 2 3 4 5 6; do echo follow line $i; sleep 1; done']));
      await waitFor('follow running', 120_000, async () => (await kjson<KPod>(['get', 'pod', 'follow'])).status?.phase === 'Running');
      const t = Date.now();
      const out = await k(['logs', '-f', 'follow'], { timeoutMs: 60_000 });
      const secs = (Date.now() - t) / 1000;
      const lines = out.trim().split('\n');
      const phase = await waitFor('follow Succeeded', 30_000, async () => ((await kjson<KPod>(['get', 'pod', 'follow'])).status?.phase === 'Succeeded' ? 'Succeeded' : undefined));
      await k(['delete', 'pod', 'follow', '--wait=true']);
      return [lines.length === 6 && lines[5] === 'follow line 6' && secs > 1.5, `${lines.length} lines over ${secs.toFixed(1)}s (last "${lines.at(-1)}"); pod ${phase}`];
    });

    // ---- Deployment 1 → 5 → 0 ----
    await check('Deployment scaled 1 → 5 → 0', async () => {
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'default' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: (pod('web', image, ['sleep', '3600']) as { spec: object }).spec },
        },
      };
      (deployment.spec.template.spec as { restartPolicy: string }).restartPolicy = 'Always';
      const times: string[] = [];
      const readyCount = async () => (await kjson<{ items: KPod[] }>(['get', 'pods', '-l', 'app=web'])).items.filter(podReady).length;
      const podCount = async () => (await kjson<{ items: KPod[] }>(['get', 'pods', '-l', 'app=web'])).items.length;
      let t = Date.now();
      await apply(deployment);
      await waitFor('1 replica ready', 120_000, async () => (await readyCount()) === 1);
      times.push(`1 ready in ${((Date.now() - t) / 1000).toFixed(1)}s`);
      t = Date.now();
      await k(['scale', 'deployment/web', '--replicas=5']);
      await waitFor('5 replicas ready', 180_000, async () => (await readyCount()) === 5);
      const sandboxes5 = JSON.parse((await runBerthctl(['-r', berthd.endpoint, 'pods', '-o', 'json', '--state', 'ready'])).stdout) as { items: unknown[] };
      times.push(`5 ready in ${((Date.now() - t) / 1000).toFixed(1)}s (${sandboxes5.items.length} ready sandboxes on berth)`);
      t = Date.now();
      await k(['scale', 'deployment/web', '--replicas=0']);
      await waitFor('0 pods', 120_000, async () => (await podCount()) === 0);
      times.push(`0 pods in ${((Date.now() - t) / 1000).toFixed(1)}s`);
      const dep = await kjson<{ status: { replicas?: number } }>(['get', 'deployment', 'web']);
      await k(['delete', 'deployment', 'web']);
      return [sandboxes5.items.length >= 5 && !dep.status.replicas, times.join('; ')];
    });

    // ---- Job ----
    await check('Job runs to completion', async () => {
      const t = Date.now();
      await k(['create', 'job', 'once', `--image=${image}`, '--', 'sh', '-c', 'echo job done on $(hostname)']);
      await k(['wait', '--for=condition=complete', 'job/once', '--timeout=150s'], { timeoutMs: 160_000 });
      const secs = (Date.now() - t) / 1000;
      const logs = (await k(['logs', 'job/once'])).trim();
      const job = await kjson<{ status: { succeeded?: number } }>(['get', 'job', 'once']);
      await k(['delete', 'job', 'once', '--cascade=foreground', '--wait=true'], { timeoutMs: 90_000 });
      return [job.status.succeeded === 1 && logs.startsWith('job done on once-'), `complete in ${secs.toFixed(1)}s, succeeded ${job.status.succeeded}, logs "${logs}"`];
    });

    // ---- streaming: exec -it, exec -i, attach, port-forward ----
    const blobSize = 3 * 1024 * 1024;
    await apply(pod('stream', image, ['sh', '-c', `mkdir /www && head -c ${blobSize} /dev/urandom > /www/blob && sha256sum /www/blob > /www/sum && exec busybox httpd -f -p 8080 -h /www`], { container: { readinessProbe: { exec: { command: ['test', '-f', '/www/sum'] }, periodSeconds: 1 } } }));
    const streamReady = await check('streaming pod Ready', async () => `${(await waitPodReady('stream')).metadata.name} ready`);
    if (streamReady) {
      await check('kubectl exec -it (a pty, under script): tty, its size, exit code', async () => {
        // script(1) gives kubectl a terminal (33x101, set before kubectl starts: kubectl
        // sends it as a resize, which berthd applies once the command runs, so the "user"
        // waits a second as a person would); what the "user" types comes through it.
        const r = await run('script', ['-qfec', `stty rows 33 cols 101; ${join(KUBE, 'kubectl')} exec -it stream -- sh`, '/dev/null'], {
          env: { PATH: process.env.PATH, KUBECONFIG: kubeconfig, HOME: '/nonexistent', TERM: 'dumb' },
          input: 'sleep 1; tty; stty size; echo marker-$((6*7))\nexit 7\n',
          timeoutMs: 60_000,
        });
        const out = r.stdout.replace(/\r/g, '');
        const tty = /\/dev\/pts\/\d+/.exec(out)?.[0];
        const size = /^(\d+ \d+)$/m.exec(out)?.[1];
        const ok = Boolean(tty) && size === '33 101' && /^marker-42$/m.test(out) && r.code === 7;
        return [ok, `tty ${tty ?? 'none'}, stty size "${size ?? '?'}" (expected 33 101), marker seen: ${/^marker-42$/m.test(out)}, exit ${r.code} (expected 7)${ok ? '' : `; output ${JSON.stringify(out.slice(-300))}`}`];
      });
      await check('kubectl exec -i carries stdin intact', async () => {
        const data = randomBytes(768 * 1024).toString('base64');
        const want = createHash('sha256').update(data).digest('hex');
        const out = (await k(['exec', '-i', 'stream', '--', 'sh', '-c', 'sha256sum; echo to-stderr >&2'], { input: data, timeoutMs: 60_000 })).trim();
        const got = out.split(/\s+/)[0];
        return [got === want, `${data.length} bytes in, sha256 ${got === want ? 'matches' : `differs (${got} vs ${want})`}`];
      });
      await check('kubectl port-forward carries data intact', async () => {
        const want = (await k(['exec', 'stream', '--', 'cat', '/www/sum'])).trim().split(/\s+/)[0];
        const local = await freePort();
        const pf = spawn(join(KUBE, 'kubectl'), ['port-forward', 'pod/stream', `${local}:8080`, '--address', '127.0.0.1'], { env: { PATH: process.env.PATH, KUBECONFIG: kubeconfig, HOME: '/nonexistent' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let pfOut = '';
        pf.stdout!.on('data', (d: Buffer) => (pfOut += d.toString()));
        pf.stderr!.on('data', (d: Buffer) => (pfOut += d.toString()));
        try {
          await waitFor('port-forward listening', 30_000, async () => {
            if (pf.exitCode !== null) throw new Error(`kubectl port-forward exited ${pf.exitCode}: ${pfOut.trim()}`);
            return pfOut.includes('Forwarding from');
          }, 200);
          const sums: string[] = [];
          const t = Date.now();
          for (let i = 0; i < 3; i++) {
            const res = await fetch(`http://127.0.0.1:${local}/blob`, { signal: AbortSignal.timeout(30_000) });
            const body = Buffer.from(await res.arrayBuffer());
            sums.push(body.length === blobSize ? createHash('sha256').update(body).digest('hex') : `${body.length} bytes`);
          }
          const secs = (Date.now() - t) / 1000;
          return [sums.every((s) => s === want), `3 x ${blobSize} bytes through ${local} in ${secs.toFixed(1)}s, sha256 ${sums.every((s) => s === want) ? 'matches' : `differs: ${sums.join(' ')} vs ${want}`}`];
        } finally {
          await stopProcess(pf, 'SIGTERM', 5000);
        }
      });
    }
    await check('kubectl attach -i: stdin in, output back, stdinOnce closes it', async () => {
      await apply(pod('attach', image, ['sh', '-c', 'echo attach-ready; while read l; do echo got:$l; done; echo stdin-closed'], { container: { stdin: true, stdinOnce: true } }));
      await waitFor('attach running', 120_000, async () => (await kjson<KPod>(['get', 'pod', 'attach'])).status?.phase === 'Running');
      const r = await kubectl(['attach', '-i', 'attach'], { input: 'hello\nworld\n', timeoutMs: 60_000 });
      const phase = await waitFor('attach to finish', 30_000, async () => {
        const p = await kjson<KPod>(['get', 'pod', 'attach']);
        return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p.status.phase : undefined;
      });
      const logs = (await k(['logs', 'attach'])).trim().replace(/\n/g, ' ');
      await k(['delete', 'pod', 'attach', '--wait=true']);
      const out = r.stdout.trim().replace(/\n/g, ' ');
      return [out.includes('got:hello got:world') && phase === 'Succeeded' && logs.endsWith('stdin-closed'), `kubectl attach exit ${r.code}, output "${out}"; pod ${phase}; logs "${logs}"`];
    });
    if (streamReady) await k(['delete', 'pod', 'stream', '--wait=true']).catch(() => undefined);

    // ---- a PersistentVolume on berth-csi ----
    await check('CSI: berth-csi registered with the kubelet (CSINode)', async () => {
      const drivers = await waitFor('CSINode with berth.csi.local', 60_000, async () => {
        const dead = exitedMessage('csi-registrar', registrar);
        if (dead) throw new Error(dead);
        const n = await kjson<{ spec: { drivers?: Array<{ name: string; nodeID: string; topologyKeys?: string[] }> } }>(['get', 'csinode', NODE]);
        return n.spec.drivers?.find((d) => d.name === DRIVER);
      });
      const labels = (await kjson<{ metadata: { labels: Record<string, string> } }>(['get', 'node', NODE])).metadata.labels;
      const topo = labels['topology.berth.csi.local/node'];
      return [drivers.nodeID === NODE && topo === NODE, `driver ${drivers.name} node ID ${drivers.nodeID}, topology keys ${drivers.topologyKeys?.join(',')}; node label topology.berth.csi.local/node=${topo}`];
    });
    await check('CSI: a PersistentVolume on berth-csi mounted by a pod, data kept across pods', async () => {
      const created = await csi.controller.createVolume({
        name: 'e2e-cluster-pv',
        capacityRange: { requiredBytes: BigInt(64 * 1024 * 1024) },
        volumeCapabilities: [{ accessType: { case: 'mount', value: { fsType: 'ext4' } }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } }],
      });
      const volumeId = created.volume!.volumeId;
      // The project's own CSIDriver manifest (no attach step, persistent volumes).
      await k(['apply', '-f', join(PACKAGE_ROOT, 'deploy/berth-csi/csidriver.yaml')]);
      await apply({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'berth-pv' },
        spec: {
          capacity: { storage: '64Mi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          csi: { driver: DRIVER, volumeHandle: volumeId, fsType: 'ext4' },
          nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.berth.csi.local/node', operator: 'In', values: [NODE] }] }] } },
        },
      });
      await apply({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'berth-pvc', namespace: 'default' },
        spec: { storageClassName: '', volumeName: 'berth-pv', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '64Mi' } } },
      });
      const bound = await waitFor('PVC Bound', 60_000, async () => ((await kjson<{ status: { phase?: string } }>(['get', 'pvc', 'berth-pvc'])).status.phase === 'Bound' ? 'Bound' : undefined));
      const volumes = { spec: { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'berth-pvc' } }] } };
      const mount = { volumeMounts: [{ name: 'data', mountPath: '/data' }] };
      await apply(pod('pv-writer', image, ['sh', '-c', 'echo written-by-pv-writer > /data/hello && sleep 3600'], { container: { ...mount, readinessProbe: { exec: { command: ['test', '-f', '/data/hello'] }, periodSeconds: 1 } }, ...volumes }));
      const t = Date.now();
      await waitPodReady('pv-writer', 150_000);
      const readyIn = (Date.now() - t) / 1000;
      const df = (await k(['exec', 'pv-writer', '--', 'df', '-k', '/data'])).trim().split('\n').at(-1)!.replace(/\s+/g, ' ');
      const fstype = (await k(['exec', 'pv-writer', '--', 'sh', '-c', 'grep " /data " /proc/mounts'])).trim();
      const loopsWhileUsed = loopDevicesUnder(csi.stateDir).length;
      const hostMounts = (await mountsUnder([rootDir])).filter((p) => p.includes('kubernetes.io~csi') || p.includes('kubernetes.io/csi'));
      await k(['delete', 'pod', 'pv-writer', '--wait=true'], { timeoutMs: 90_000 });
      // The kubelet unpublishes and unstages once the pod is gone.
      const unmounted = await waitFor('the volume unmounted and its loop device detached', 90_000, async () => {
        const left = (await mountsUnder([rootDir])).filter((p) => p.includes('csi'));
        return left.length === 0 && loopDevicesUnder(csi.stateDir).length === 0 ? 'yes' : undefined;
      }).catch((err: Error) => err.message);
      await apply(pod('pv-reader', image, ['sh', '-c', 'cat /data/hello'], { container: mount, ...volumes }));
      const phase = await waitFor('pv-reader done', 150_000, async () => {
        const p = await kjson<KPod>(['get', 'pod', 'pv-reader']);
        return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p.status.phase : undefined;
      });
      const read = (await k(['logs', 'pv-reader'])).trim();
      await k(['delete', 'pod', 'pv-reader', '--wait=true'], { timeoutMs: 90_000 });
      await k(['delete', 'pvc', 'berth-pvc', '--wait=true']);
      await k(['delete', 'pv', 'berth-pv', '--wait=true']);
      const ok = bound === 'Bound' && /ext4/.test(fstype) && loopsWhileUsed === 1 && hostMounts.length >= 1 && unmounted === 'yes' && read === 'written-by-pv-writer';
      return [ok, `volume ${volumeId}; PVC ${bound}; writer Ready in ${readyIn.toFixed(1)}s; /data: "${fstype}", df "${df}"; loop devices while used ${loopsWhileUsed}, kubelet CSI mounts ${hostMounts.length}; after delete unmounted+detached: ${unmounted}; second pod ${phase} read "${read}"`];
    });

    // ---- nothing left ----
    await check('nothing left: sandboxes, processes, pod cgroups, mounts, netns', async () => {
      await kubectl(['delete', 'pods', '--all', '--wait=true', '--grace-period=1'], { timeoutMs: 90_000 });
      const t = Date.now();
      const sandboxes = await waitFor('no sandbox left on berth', 150_000, async () => {
        const r = await runBerthctl(['-r', berthd.endpoint, 'pods', '-o', 'json']);
        if (r.code !== 0) throw new Error(r.stderr);
        return ((JSON.parse(r.stdout) as { items: unknown[] }).items ?? []).length === 0 ? 'none' : undefined;
      }, 3000).catch((err: Error) => err.message);
      const procs = await processesBelow(cgroupRoot);
      const podCgroups = (await cgroupsBelow(cgroupRoot)).filter((d) => /\/pod[0-9a-f-]{36}$/.test(d));
      const mounts = (await mountsUnder([berthd.dir, rootDir])).filter((p) => !/\/state\/(ns|rro)$|\/state$|\/root\/overlay$/.test(p));
      const netns = (await readdir(join(berthd.dir, 'state/ns')).catch(() => [] as string[])).filter((f) => f.endsWith('-net'));
      const loops = loopDevicesUnder(csi.stateDir);
      const ok = sandboxes === 'none' && procs.length === 0 && podCgroups.length === 0 && mounts.length === 0 && netns.length === 0 && loops.length === 0;
      return [ok, `sandboxes: ${sandboxes === 'none' ? `none (${((Date.now() - t) / 1000).toFixed(0)}s)` : sandboxes}; processes ${procs.length}${procs[0] ? ` (${procs.slice(0, 3).join('; ')})` : ''}, pod cgroups ${podCgroups.length}, mounts ${mounts.length}${mounts[0] ? ` (${mounts.slice(0, 3).join(' ')})` : ''}, netns ${netns.length}, loop devices ${loops.length}`];
    });
    return await finish();
  } catch (err) {
    add('run', false, (err as Error).stack ?? String(err));
    return await finish();
  }

  async function finish(): Promise<number> {
    await scope.close();
    const failed = checks.filter((c) => !c.ok).length;
    const rpcs = failedRpcs(berthdLogs());
    const warnings = klogWarnings(kubeletLogs());
    const out = ['', '==== one-node cluster on berth ===='];
    for (const c of checks) out.push(`${c.ok ? 'PASS' : 'FAIL'} ${c.id}: ${c.detail}`);
    out.push('', `---- berth: CRI calls that failed or were unimplemented (${Math.max(0, rpcs.length - 1)} kinds)`);
    out.push(...(rpcs.length > 1 ? rpcs.slice(1) : ['(none)']), rpcs[0] ?? '');
    out.push('', `---- kubelet (cluster) warnings and errors (${warnings.length} kinds)`, ...(warnings.length ? warnings : ['(none)']));
    out.push(`cluster: ${checks.length - failed} passed, ${failed} failed`, '');
    const report = out.join('\n');
    process.stdout.write(report);
    if (outDir) await writeFile(join(outDir, 'report.txt'), report).catch(() => undefined);
    return failed === 0 && checks.length > 0 ? 0 : 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
