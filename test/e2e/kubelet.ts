// A real kubelet, standalone (no API server: static pods from a manifest dir), runs pods
// on berthd and then on Debian's containerd, and the same scenarios are checked on each
// from the kubelet's side (its logs, its /pods, /stats/summary and /containerLogs) and
// from inside the containers (ExecSync through berthctl). Prints both results side by
// side, every CRI call berthd failed or did not implement, and the kubelet's warnings.
// Driven by scripts/e2e-kubelet.sh, which builds the kubelet and restores the kernel
// settings the kubelet rewrites.
//   node dist/test/e2e/kubelet.js --kubelet PATH [--runtimes berth,containerd] [--out DIR]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Scope } from '../helpers/scope.js';
import { startBerthd, launchBerthd, runBerthctl } from '../helpers/berthd.js';
import { startContainerd, pushPauseImage, registryCriToml } from '../helpers/containerd.js';
import { startPodNetwork, type TestPodNetwork } from '../helpers/pod-network.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { buildLayer, busyboxEntries, pushImage } from '../helpers/image-builder.js';
import { run, stopProcess } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';
import { baseKubeletConfig, cgroupsBelow, closeOnSignals, failedRpcs, klogWarnings, makeCgroupRoot, mountsUnder, processesBelow, progressLog, removeCgroups, waitFor } from '../helpers/kube-host.js';

const { values: args } = parseArgs({
  options: {
    kubelet: { type: 'string' },
    runtimes: { type: 'string', default: 'berth,containerd,berth-gates' },
    out: { type: 'string' },
  },
});
if (!args.kubelet) {
  process.stderr.write('usage: kubelet.js --kubelet PATH [--runtimes berth,containerd] [--out DIR]\n');
  process.exit(2);
}
const KUBELET = args.kubelet;
const NODE = 'berth-e2e';
const log = progressLog(Date.now());

// ---- checks ------------------------------------------------------------------------

interface Check {
  id: string;
  ok: boolean;
  detail: string;
}
type RuntimeName = 'berth' | 'containerd';
/** A column of the report: a runtime, or berth again with the kubelet's feature gates on. */
type Variant = RuntimeName | 'berth-gates';
const VARIANTS: Variant[] = ['berth', 'containerd', 'berth-gates'];
/** The kubelet's feature gates of the berth-gates run (a subset of the scenarios). */
const GATES = { EventedPLEG: true, PodAndContainerStatsFromCRI: true };
/** /stats/summary of the plain berth run (pod -> containers with cpu and memory), to compare with the gated run's. */
let statsBaseline: Map<string, string[]> | undefined;
interface RuntimeResult {
  checks: Check[];
  /** CRI calls the runtime answered with an error (berth only: from its rpc log lines). */
  failedRpcs: string[];
  /** The kubelet's W/E lines, deduplicated, runtime-related first. */
  kubeletWarnings: string[];
  seconds: number;
}

class Checks {
  readonly list: Check[] = [];
  add(id: string, ok: boolean, detail = ''): boolean {
    this.list.push({ id, ok, detail });
    log(`${ok ? 'PASS' : 'FAIL'} ${id}${detail ? `: ${detail}` : ''}`);
    return ok;
  }
  /** Runs fn; a throw is a failed check with the error's message. */
  async try(id: string, fn: () => Promise<string | boolean | [boolean, string]>): Promise<boolean> {
    try {
      const r = await fn();
      if (typeof r === 'string') return this.add(id, true, r);
      if (typeof r === 'boolean') return this.add(id, r);
      return this.add(id, r[0], r[1]);
    } catch (err) {
      return this.add(id, false, (err as Error).message.split('\n').slice(0, 3).join(' | '));
    }
  }
}

// ---- kubelet's API -----------------------------------------------------------------

interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  containerID?: string;
  state?: { running?: object; waiting?: { reason?: string; message?: string }; terminated?: { exitCode: number; reason?: string } };
  lastState?: { terminated?: { exitCode: number; reason?: string } };
}
interface KPod {
  metadata: { name: string; uid: string };
  status?: { phase?: string; podIP?: string; conditions?: Array<{ type: string; status: string }>; initContainerStatuses?: ContainerStatus[]; containerStatuses?: ContainerStatus[] };
}

function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.end();
  });
}

class KubeletApi {
  constructor(
    readonly readOnlyPort: number,
    readonly port: number,
  ) {}
  async get(path: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.readOnlyPort}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = await res.text();
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${body.slice(0, 200)}`);
    return body;
  }
  async pods(): Promise<KPod[]> {
    return (JSON.parse(await this.get('/pods')) as { items: KPod[] }).items ?? [];
  }
  async pod(name: string): Promise<KPod | undefined> {
    return (await this.pods()).find((p) => p.metadata.name === `${name}-${NODE}`);
  }
  /** The authenticated port (anonymous, AlwaysAllow here): /containerLogs lives there. */
  async secure(path: string): Promise<string> {
    const res = await httpsGet(`https://127.0.0.1:${this.port}${path}`);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body.slice(0, 200)}`);
    return res.body;
  }
}

const status = (pod: KPod | undefined, name: string) => pod?.status?.containerStatuses?.find((c) => c.name === name);

// ---- the runtime under test ----------------------------------------------------------

interface Runtime {
  name: RuntimeName;
  endpoint: string;
  logs(): string;
  /** Directories whose mounts and files belong to this runtime. */
  dirs: string[];
  /** Runtime-side view of the node's network namespaces (pinned files or /run/netns). */
  netns(): Promise<string[]>;
  /** Records what the runtime's current pods hold on the host (to check it is gone later). */
  notePods?(): Promise<void>;
  /** Stops the runtime with signal, runs whileDown, starts it again on the same state (berth only). */
  restart?(signal: NodeJS.Signals, whileDown: () => Promise<void>): Promise<void>;
}

const ctl = (rt: Runtime, argv: string[]) => runBerthctl(['-r', rt.endpoint, '--timeout', '30s', ...argv]);

interface CriContainer {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt?: number };
  state: string;
  labels: Record<string, string>;
}

async function containers(rt: Runtime, pod: string, name?: string): Promise<CriContainer[]> {
  const r = await ctl(rt, ['ps', '-a', '-o', 'json', '--label', `io.kubernetes.pod.name=${pod}-${NODE}`, ...(name ? ['--name', `^${name}$`] : [])]);
  if (r.code !== 0) throw new Error(`ps: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { containers: CriContainer[] }).containers ?? [];
}

async function running(rt: Runtime, pod: string, name: string): Promise<CriContainer> {
  const found = (await containers(rt, pod, name)).filter((c) => c.state === 'CONTAINER_RUNNING');
  if (found.length !== 1) throw new Error(`${found.length} running ${name} containers in ${pod}`);
  return found[0]!;
}

async function exec(rt: Runtime, id: string, command: string[]): Promise<string> {
  const r = await ctl(rt, ['exec', '--sync', '--timeout', '10', id, ...command]);
  if (r.code !== 0) throw new Error(`exec ${command.join(' ')}: exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

// ---- /stats/summary ----------------------------------------------------------------

interface StatsContainer {
  name: string;
  cpu?: { usageCoreNanoSeconds?: number; usageNanoCores?: number };
  memory?: { workingSetBytes?: number };
  rootfs?: { usedBytes?: number };
  logs?: { usedBytes?: number };
}
interface Summary {
  node: object;
  pods?: Array<{ podRef: { name: string }; containers?: StatsContainer[]; cpu?: { usageCoreNanoSeconds?: number }; memory?: { workingSetBytes?: number }; network?: { rxBytes?: number }; volume?: unknown[] }>;
}

async function statsSummary(api: KubeletApi): Promise<Summary> {
  return JSON.parse(await api.get('/stats/summary')) as Summary;
}

/** pod name -> its containers' names, sorted, for the pods named. */
function summaryShape(s: Summary, pods: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of pods) {
    const pod = s.pods?.find((x) => x.podRef.name === `${p}-${NODE}`);
    out.set(p, pod ? (pod.containers ?? []).map((c) => c.name).sort() : ['(no pod)']);
  }
  return out;
}

// ---- pods ---------------------------------------------------------------------------

interface PodEnv {
  image: string;
  hostDir: string;
  hostPort: number;
}

function manifests(env: PodEnv): Record<string, object> {
  const image = env.image;
  const base = { imagePullPolicy: 'IfNotPresent', image };
  const web = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      dnsPolicy: 'Default',
      terminationGracePeriodSeconds: 10,
      initContainers: [{ ...base, name: 'init', command: ['sh', '-c', 'echo init-done > /data/init.txt'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
      containers: [
        {
          ...base,
          name: 'main',
          command: ['sh', '-c'],
          args: [
            'trap \'echo got SIGTERM; echo term > /host/term-main; sleep 2; echo bye; exit 0\' TERM; echo main started in $(pwd); mkdir -p /www; echo hello-from-web > /www/index.html; busybox httpd -p 8080 -h /www; while true; do sleep 1; done',
          ],
          env: [{ name: 'E2E_GREETING', value: 'hello kubelet' }],
          workingDir: '/data',
          ports: [{ containerPort: 8080, hostPort: env.hostPort, protocol: 'TCP' }],
          resources: { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '500m', memory: '64Mi' } },
          readinessProbe: { exec: { command: ['cat', '/data/init.txt'] }, periodSeconds: 2 },
          volumeMounts: [
            { name: 'data', mountPath: '/data' },
            { name: 'host', mountPath: '/host' },
          ],
        },
        {
          ...base,
          name: 'logger',
          command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "logger line $i"; echo "logger err $i" >&2; sleep 1; done'],
          resources: { limits: { cpu: '200m', memory: '32Mi' } },
          volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }],
        },
      ],
      volumes: [
        { name: 'data', emptyDir: {} },
        { name: 'host', hostPath: { path: env.hostDir, type: 'Directory' } },
      ],
    },
  };
  const probe = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'probe', namespace: 'default' },
    spec: {
      dnsPolicy: 'Default',
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          ...base,
          name: 'live',
          command: ['sh', '-c', 'touch /tmp/healthy; sleep 5; rm /tmp/healthy; sleep 3600'],
          livenessProbe: { exec: { command: ['test', '-f', '/tmp/healthy'] }, periodSeconds: 2, failureThreshold: 1, timeoutSeconds: 5 },
          readinessProbe: { exec: { command: ['true'] }, periodSeconds: 2 },
        },
      ],
    },
  };
  const crash = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'crash', namespace: 'default' },
    spec: {
      dnsPolicy: 'Default',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 2,
      containers: [{ ...base, name: 'crash', command: ['sh', '-c', 'echo crashing; exit 3'] }],
    },
  };
  // For the restarts and the log rotation: containers that must never restart, two that
  // exit 7 when /host/quit-SIGNAL appears (while berthd is down), a chatty one (~2 KB/s).
  const steady = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'steady', namespace: 'default' },
    spec: {
      dnsPolicy: 'Default',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 2,
      containers: [
        { ...base, name: 'stay', command: ['sh', '-c', 'while true; do sleep 1; done'] },
        // One for each berthd restart, so that neither waits out the kubelet's back-off.
        ...['SIGKILL', 'SIGTERM'].map((signal) => ({
          ...base,
          name: `quitter-${signal.toLowerCase()}`,
          command: ['sh', '-c', `echo quitter up; while true; do if [ -f /host/quit-${signal} ]; then rm -f /host/quit-${signal}; echo quitting; exit 7; fi; sleep 0.2; done`],
          volumeMounts: [{ name: 'host', mountPath: '/host' }],
        })),
        {
          ...base,
          name: 'chatty',
          command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "chatty line $i 0123456789012345678901234567890123456789012345678901234567890123456789"; if [ $((i % 20)) = 0 ]; then sleep 1; fi; done'],
        },
      ],
      volumes: [{ name: 'host', hostPath: { path: env.hostDir, type: 'Directory' } }],
    },
  };
  return { web, probe, crash, steady };
}

// ---- cgroups -------------------------------------------------------------------------

// ---- one runtime ---------------------------------------------------------------------

async function runOne(top: Scope, variant: Variant, registry: TestRegistry, image: string, pauseImage: string, outDir: string): Promise<RuntimeResult> {
  const t0 = Date.now();
  const name: RuntimeName = variant === 'containerd' ? 'containerd' : 'berth';
  // The gated run: web, probe and crash only, their checks, the stats and the PLEG.
  const gated = variant === 'berth-gates';
  const scope = new Scope();
  // A signal closes the top scope: this run's kubelet, runtime and network go first.
  top.after(() => scope.close());
  const checks = new Checks();
  let kubeletLog = '';
  let rt: Runtime | undefined;
  try {
    log(`==== ${variant}${gated ? ` (feature gates ${Object.keys(GATES).join(', ')})` : ''} ====`);
    const network: TestPodNetwork = await startPodNetwork(scope);
    let runtime: Runtime;
    if (name === 'berth') {
      // berthd (and a restarted one) cleans up in this scope, at this place in the order.
      const berthdScope = new Scope();
      scope.after(() => berthdScope.close());
      let berthd = await startBerthd(berthdScope, { cniConfDir: network.confDir, logLevel: 'debug' });
      let earlierLogs = '';
      scope.after(() => writeFile(join(outDir, gated ? 'berthd-gates.log' : 'berthd.log'), earlierLogs + berthd.logs()));
      runtime = {
        name,
        endpoint: berthd.endpoint,
        logs: () => earlierLogs + berthd.logs(),
        dirs: [berthd.dir],
        netns: async () => (await readdir(join(berthd.dir, 'state/ns')).catch(() => [] as string[])).filter((f) => f.endsWith('-net')),
        restart: async (signal, whileDown) => {
          await berthd.stop(signal);
          earlierLogs += `${berthd.logs()}\n---- berthd stopped (${signal}), restarted ----\n`;
          await whileDown();
          berthd = await launchBerthd(berthdScope, berthd.dir, berthd.configPath, berthd.socket);
        },
      };
    } else {
      // containerd pins pod netns in the host's /run/netns, where other programs' are
      // too: the ones of this run's pods are read from their sandboxes while they run.
      const podNetns = new Set<string>();
      const containerd = await startContainerd(scope, {
        cniConfDir: network.confDir,
        criToml: registryCriToml(registry, pauseImage),
      });
      scope.after(() => writeFile(join(outDir, 'containerd.log'), containerd.logs()));
      runtime = {
        name,
        endpoint: containerd.endpoint,
        logs: containerd.logs,
        dirs: [containerd.dir],
        netns: async () => [...podNetns].filter((f) => existsSync(f)),
        notePods: async () => {
          const pods = await ctl(runtime, ['pods', '-q']);
          for (const id of pods.stdout.split('\n').filter(Boolean)) {
            const info = await ctl(runtime, ['inspectp', '-o', 'json', id]);
            for (const m of info.stdout.matchAll(/\/(?:var\/)?run\/netns\/cni-[0-9a-f-]+/g)) podNetns.add(m[0]);
          }
        },
      };
    }
    rt = runtime;

    // The kubelet's own places.
    const dir = await tempDir(scope, `kubelet-${variant}-`);
    const rootDir = join(dir, 'root');
    const certDir = join(dir, 'pki');
    const manifestDir = join(dir, 'manifests');
    const podLogs = join(dir, 'pod-logs');
    const hostDir = join(dir, 'host');
    for (const d of [rootDir, certDir, manifestDir, podLogs, hostDir]) await mkdir(d, { recursive: true });
    await writeFile(join(hostDir, 'from-host'), 'written on the host\n');
    const cgroupRoot = `berth-e2e-${randomBytes(3).toString('hex')}`;
    await makeCgroupRoot(cgroupRoot);
    scope.after(() => removeCgroups(cgroupRoot));

    const [port, readOnlyPort, healthzPort, hostPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const config = {
      ...(await baseKubeletConfig({ dir, cgroupRoot, endpoint: runtime.endpoint, podLogsDir: podLogs })),
      staticPodPath: manifestDir,
      fileCheckFrequency: '2s',
      address: '127.0.0.1',
      port,
      readOnlyPort,
      healthzPort,
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysAllow' },
      registerNode: false,
      // Small, so that the chatty container's log is rotated within seconds.
      containerLogMaxSize: '10Ki',
      containerLogMaxFiles: 3,
      containerLogMonitorInterval: '3s',
      ...(gated ? { featureGates: GATES } : {}),
    };
    const configPath = join(dir, 'kubelet.json');
    await writeFile(configPath, JSON.stringify(config, null, 1));
    const m = manifests({ image, hostDir, hostPort });
    if (gated) delete m.steady;
    for (const [podName, manifest] of Object.entries(m)) await writeFile(join(manifestDir, `${podName}.json`), JSON.stringify(manifest, null, 1));

    const kubeletLogPath = join(outDir, `kubelet-${variant}.log`);
    const logFile = createWriteStream(kubeletLogPath);
    const startKubelet = async (): Promise<ChildProcess> => {
      const child = spawn(
        KUBELET,
        // evented.go at V(4): its "requested pod relist after container termination" lines.
        ['--config', configPath, '--root-dir', rootDir, '--cert-dir', certDir, '--hostname-override', NODE, '--v=2', ...(gated ? ['--vmodule=evented=4'] : [])],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      if (process.env.E2E_PIDFILE_DIR) await writeFile(join(process.env.E2E_PIDFILE_DIR, `kubelet-${variant}.pid`), `${child.pid}\n`);
      const onData = (d: Buffer) => {
        kubeletLog += d.toString();
        logFile.write(d);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      return child;
    };
    let kubelet = await startKubelet();
    scope.after(async () => {
      await stopProcess(kubelet, 'SIGTERM', 15_000);
      logFile.end();
    });
    const api = new KubeletApi(readOnlyPort, port);
    const waitHealthy = () =>
      waitFor('kubelet /healthz', 60_000, async () => {
        if (kubelet.exitCode !== null) throw new Error(`kubelet exited ${kubelet.exitCode}: ${kubeletLog.split('\n').filter((l) => /^[EF]\d{4}/.test(l)).slice(-3).join(' | ')}`);
        const r = await fetch(`http://127.0.0.1:${healthzPort}/healthz`, { signal: AbortSignal.timeout(2000) });
        return r.ok;
      }, 500);
    const healthy = await checks.try('kubelet starts and answers /healthz', async () => {
      await waitHealthy();
      return `${((Date.now() - t0) / 1000).toFixed(1)}s after start of this runtime's run`;
    });
    if (!healthy) return await finish();

    // ---- (a) a pod with an init container, two containers, volumes, limits, hostPort ----
    const webUp = Date.now();
    let signals = '';
    const webReady = await checks.try('a: web pod Running, init done, both containers ready', async () => {
      const pod = await waitFor('web ready', 120_000, async () => {
        const p = await api.pod('web');
        return p?.status?.phase === 'Running' && p.status.containerStatuses?.length === 2 && p.status.containerStatuses.every((c) => c.ready) ? p : undefined;
      });
      const init = pod.status?.initContainerStatuses?.[0];
      return [init?.state?.terminated?.exitCode === 0, `ready in ${((Date.now() - webUp) / 1000).toFixed(1)}s; init exit ${init?.state?.terminated?.exitCode}; podIP ${pod.status?.podIP}`];
    });
    if (webReady && !gated) {
      await checks.try('a: env, working dir and command in main', async () => {
        const main = await running(runtime, 'web', 'main');
        const env = await exec(runtime, main.id, ['env']);
        const pwd = (await exec(runtime, main.id, ['pwd'])).trim();
        const ps = await exec(runtime, main.id, ['ps', '-o', 'args']);
        signals = (await exec(runtime, main.id, ['sh', '-c', 'grep -E "^Sig(Ign|Blk|Cgt)" /proc/1/status; cat /proc/1/cmdline | tr "\\0" " "'])).trim().replace(/\n/g, ' / ');
        return [env.includes('E2E_GREETING=hello kubelet') && pwd === '/data' && ps.includes('while true'), `E2E_GREETING ${env.includes('E2E_GREETING=hello kubelet') ? 'set' : 'missing'}, pwd ${pwd}, command ${ps.includes('while true') ? 'runs' : 'not seen'}; pid 1: ${signals}`];
      });
      await checks.try('a: cgroup limits visible in main (64Mi, 500m)', async () => {
        const main = await running(runtime, 'web', 'main');
        const mem = (await exec(runtime, main.id, ['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes'])).trim();
        const quota = (await exec(runtime, main.id, ['cat', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'])).trim();
        const period = (await exec(runtime, main.id, ['cat', '/sys/fs/cgroup/cpu/cpu.cfs_period_us'])).trim();
        const cg = (await exec(runtime, main.id, ['cat', '/proc/self/cgroup'])).split('\n').find((l) => l.includes(':memory:')) ?? '';
        return [mem === String(64 * 1024 * 1024) && Number(quota) * 2 === Number(period), `memory.limit_in_bytes ${mem}, cfs quota ${quota}/${period}, ${cg}`];
      });
      await checks.try('a: emptyDir shared with init and logger, hostPath both ways', async () => {
        const main = await running(runtime, 'web', 'main');
        const logger = await running(runtime, 'web', 'logger');
        const fromInit = (await exec(runtime, logger.id, ['cat', '/data/init.txt'])).trim();
        const fromHost = (await exec(runtime, main.id, ['cat', '/host/from-host'])).trim();
        await exec(runtime, main.id, ['sh', '-c', 'echo written in the pod > /host/from-pod']);
        const back = (await readFile(join(hostDir, 'from-pod'), 'utf8')).trim();
        const ro = await ctl(runtime, ['exec', '--sync', logger.id, 'touch', '/data/x']);
        return [fromInit === 'init-done' && fromHost === 'written on the host' && back === 'written in the pod' && ro.code !== 0, `init.txt "${fromInit}", host file "${fromHost}", back on host "${back}", read-only mount refuses writes: ${ro.code !== 0}`];
      });
      await checks.try('a: resolv.conf from the kubelet\'s resolvConf', async () => {
        const main = await running(runtime, 'web', 'main');
        const r = await exec(runtime, main.id, ['cat', '/etc/resolv.conf']);
        return [r.includes('berth-e2e.invalid'), r.trim().replace(/\n/g, ' / ')];
      });
      for (const host of ['127.0.0.1', network.gateway]) {
        await checks.try(`a: hostPort via ${host === '127.0.0.1' ? '127.0.0.1' : 'the bridge IP'}`, async () => {
          const body = await waitFor(`http://${host}:${hostPort}/`, 15_000, async () => {
            const r = await fetch(`http://${host}:${hostPort}/index.html`, { signal: AbortSignal.timeout(3000) });
            return r.ok ? (await r.text()).trim() : undefined;
          });
          return [body === 'hello-from-web', `${host}:${hostPort} -> "${body}"`];
        });
      }
      // ---- (c) logs ----
      await checks.try('c: container logs in CRI format under the pod log dir', async () => {
        const pod = await api.pod('web');
        const podDir = join(podLogs, `default_web-${NODE}_${pod!.metadata.uid}`);
        const text = await waitFor('logger log lines', 15_000, async () => {
          const t = await readFile(join(podDir, 'logger', '0.log'), 'utf8');
          return t.includes('stderr F logger err 3') ? t : undefined;
        });
        const lines = text.split('\n').filter(Boolean);
        const bad = lines.filter((l) => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] /.test(l));
        const mainLog = await readFile(join(podDir, 'main', '0.log'), 'utf8');
        const initLog = existsSync(join(podDir, 'init', '0.log'));
        return [bad.length === 0 && /stdout F logger line 1$/m.test(text) && mainLog.includes('main started in /data') && initLog, `${lines.length} lines, ${bad.length} malformed${bad[0] ? ` (${bad[0]})` : ''}; main: ${mainLog.includes('main started in /data')}; init/0.log: ${initLog}`];
      });
      await checks.try('c: kubelet /containerLogs serves them', async () => {
        const body = await api.secure(`/containerLogs/default/web-${NODE}/logger?tailLines=3`);
        return [/logger (line|err) \d+/.test(body), body.trim().split('\n').slice(-2).join(' / ')];
      });
    }

    // ---- (b) probes and restarts ----
    await checks.try('b: exec readiness probe makes probe/live ready', async () => {
      await waitFor('live ready', 90_000, async () => status(await api.pod('probe'), 'live')?.ready === true);
      return 'ready';
    });
    await checks.try('b: failing exec liveness probe restarts live, attempt increasing', async () => {
      const s = await waitFor('live restarted twice', 120_000, async () => {
        const c = status(await api.pod('probe'), 'live');
        return c && c.restartCount >= 2 ? c : undefined;
      });
      const attempts = (await containers(runtime, 'probe', 'live')).map((c) => c.metadata.attempt ?? 0).sort((a, b) => a - b);
      const killed = /Container live failed liveness probe|failed liveness probe, will be restarted/.test(kubeletLog);
      // The kubelet's GC may have removed attempt 1 already when the machine is slow.
      return [attempts.length >= 1 && Math.max(...attempts) >= 2 && killed, `restartCount ${s.restartCount}, CRI attempts [${attempts.join(',')}], kubelet logged the liveness kill: ${killed}`];
    });
    await checks.try('b: crashing container backs off (CrashLoopBackOff, exit 3)', async () => {
      const s = await waitFor('crash in back-off', 120_000, async () => {
        const c = status(await api.pod('crash'), 'crash');
        return c && c.restartCount >= 2 && c.state?.waiting?.reason === 'CrashLoopBackOff' ? c : undefined;
      });
      const exits = await containers(runtime, 'crash', 'crash');
      return [s.lastState?.terminated?.exitCode === 3, `restartCount ${s.restartCount}, waiting ${s.state?.waiting?.reason}, last exit ${s.lastState?.terminated?.exitCode}, ${exits.length} CRI containers kept`];
    });

    // ---- stats ----
    if (webReady) {
      await checks.try('stats: /stats/summary has web\'s containers with cpu and memory', async () => {
        const summary = await waitFor('stats for web', 60_000, async () => {
          const web = (await statsSummary(api)).pods?.find((p) => p.podRef.name === `web-${NODE}`);
          const names = (web?.containers ?? []).filter((c) => (c.cpu?.usageCoreNanoSeconds ?? 0) > 0 && (c.memory?.workingSetBytes ?? 0) > 0).map((c) => c.name);
          return names.includes('main') && names.includes('logger') ? web : undefined;
        }, 3000);
        const main = summary.containers!.find((c) => c.name === 'main')!;
        return `main cpu ${main.cpu?.usageCoreNanoSeconds} ns, memory ws ${main.memory?.workingSetBytes} B, rootfs ${main.rootfs?.usedBytes ?? 'n/a'} B, logs ${main.logs?.usedBytes ?? 'n/a'} B; pod network rx ${summary.network?.rxBytes ?? 'n/a'} B; volumes ${(summary.volume ?? []).length}`;
      });
      // The same pods (web, probe, crash) and containers with PodAndContainerStatsFromCRI on
      // as off, with plausible figures.
      if (variant === 'berth') {
        const s = await statsSummary(api).catch(() => undefined);
        if (s) statsBaseline = summaryShape(s, ['web']);
      } else if (gated && !statsBaseline) {
        log('SKIP stats: same pods as with PodAndContainerStatsFromCRI off: the plain berth run did not run first (--runtimes berth,...,berth-gates)');
      } else if (gated) {
        await checks.try('stats: PodAndContainerStatsFromCRI on: same pods and containers as off, plausible cpu/memory', async () => {
          const baseline = statsBaseline!;
          const want = [...baseline].map(([p, cs]) => `${p}[${cs.join(',')}]`).join(' ');
          let got = '';
          let s: Summary | undefined;
          // web's containers run throughout: the same as with the gate off. probe's and
          // crash's come and go (restarts, back-off): with the gate on the kubelet shows
          // every ready sandbox and its running containers, so those must match the runtime's.
          let running = '';
          let others = '';
          await waitFor('the same pods and containers', 45_000, async () => {
            s = await statsSummary(api);
            got = [...summaryShape(s, ['web'])].map(([p, cs]) => `${p}[${cs.join(',')}]`).join(' ');
            others = [...summaryShape(s, ['probe', 'crash'])].map(([p, cs]) => `${p}[${cs.join(',')}]`).join(' ');
            const live = [];
            for (const p of ['probe', 'crash']) live.push(`${p}[${(await containers(runtime, p)).filter((c) => c.state === 'CONTAINER_RUNNING').map((c) => c.metadata.name).sort().join(',')}]`);
            running = live.join(' ');
            return got === want && others === running;
          }, 3000).catch(() => undefined);
          const web = s?.pods?.find((p) => p.podRef.name === `web-${NODE}`);
          const figures = (web?.containers ?? []).map((c) => `${c.name} cpu ${c.cpu?.usageCoreNanoSeconds ?? 'n/a'} ns (${c.cpu?.usageNanoCores ?? 'n/a'} nanocores), mem ws ${c.memory?.workingSetBytes ?? 'n/a'} B`);
          // Plausible: cpu used (and a rate), a working set between 64 KiB and the limit (64Mi main, 32Mi logger).
          const limits: Record<string, number> = { main: 64 << 20, logger: 32 << 20 };
          const plausible = (web?.containers ?? []).filter((c) => c.name in limits).every((c) => (c.cpu?.usageCoreNanoSeconds ?? 0) > 0 && (c.cpu?.usageNanoCores ?? 0) > 0 && (c.memory?.workingSetBytes ?? 0) > 64 << 10 && (c.memory?.workingSetBytes ?? 0) <= limits[c.name]!) && (web?.containers ?? []).length === 2;
          return [got === want && others === running && plausible && web?.network !== undefined, `off: ${want}; on: ${got}, ${others} (running: ${running}); ${figures.join('; ')}; pod cpu ${web?.cpu?.usageCoreNanoSeconds ?? 'n/a'} ns, mem ws ${web?.memory?.workingSetBytes ?? 'n/a'} B, network rx ${web?.network?.rxBytes ?? 'n/a'} B`];
        });
      }
    }

    if (gated) {
      await checks.try('pleg: EventedPLEG in use: GetContainerEvents stream, container stops request relists', async () => {
        // The crash and probe pods have stopped containers by now.
        const metrics = await api.secure('/metrics');
        const metric = (n: string) => Number(new RegExp(`^kubelet_${n}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
        const conns = metric('evented_pleg_connection_success_count');
        const errors = metric('evented_pleg_connection_error_count');
        const events = metric('evented_pleg_connection_latency_seconds_count');
        const relists = (kubeletLog.match(/Evented PLEG: requested pod relist after container termination/g) ?? []).length;
        const gaveUp = /Evented PLEG: disabling container-termination fast path/.test(kubeletLog);
        return [conns >= 1 && events > 0 && relists > 0 && !gaveUp, `stream connections ${conns}, errors ${errors}, events received ${events}, relists requested on stop events ${relists}, gave up: ${gaveUp}`];
      });
    }

    if (webReady && !gated) {
      // ---- (e) ExecSync on an exited container, and what the kubelet's probes make of it ----
      await checks.try('e: ExecSync on an exited container is refused', async () => {
        const exited = await waitFor('an exited crash container', 30_000, async () => (await containers(runtime, 'crash', 'crash')).find((c) => c.state === 'CONTAINER_EXITED'));
        const r = await ctl(runtime, ['exec', '--sync', '--timeout', '5', exited.id, 'true']);
        const probeErrors = kubeletLog.split('\n').filter((l) => l.includes('Probe errored'));
        const sample = /err="([^"]{0,160})/.exec(probeErrors[0] ?? '')?.[1] ?? '';
        return [r.code !== 0, `berthctl exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n')[0]}; kubelet "Probe errored" lines so far: ${probeErrors.length}${sample ? ` (${sample})` : ''}`];
      });

      // ---- (c) log rotation ----
      await checks.try('c: kubelet rotates chatty\'s log (10Ki, 3 files): CRI format, logs keep flowing', async () => {
        const pod = await api.pod('steady');
        const dir = join(podLogs, `default_steady-${NODE}_${pod!.metadata.uid}`, 'chatty');
        const files = await waitFor('a rotated chatty log', 40_000, async () => {
          const f = await readdir(dir);
          return f.filter((x) => /^0\.log\.\d{8}-\d{6}(\.gz)?$/.test(x)).length >= 2 ? f : undefined;
        });
        const rotated = files.filter((x) => x !== '0.log');
        const numbers = (text: string) => [...text.matchAll(/chatty line (\d+)/g)].map((x) => Number(x[1]));
        let malformed = 0;
        let maxRotated = 0;
        for (const f of rotated) {
          const raw = await readFile(join(dir, f)).catch(() => undefined);
          if (!raw) continue; // rotated away meanwhile
          const text = (f.endsWith('.gz') ? gunzipSync(raw) : raw).toString();
          malformed += text.split('\n').filter((l) => l && !/^\S+ (stdout|stderr) [FP] /.test(l)).length;
          maxRotated = Math.max(maxRotated, ...numbers(text));
        }
        const fresh = await waitFor('newer lines in 0.log', 15_000, async () => {
          const n = numbers(await readFile(join(dir, '0.log'), 'utf8'));
          return n.length && Math.max(...n) > maxRotated ? Math.max(...n) : undefined;
        }, 500);
        const tail = await api.secure(`/containerLogs/default/steady-${NODE}/chatty?tailLines=2`);
        const tailMax = Math.max(0, ...numbers(tail));
        const reopens = runtime.name === 'berth' ? `, berthd answered ReopenContainerLog ${runtime.logs().split('\n').filter((l) => l.includes('"rpc":"ReopenContainerLog"') && l.includes('"code":"OK"')).length}x` : '';
        return [rotated.length >= 2 && files.length <= 3 && malformed === 0 && tailMax >= fresh, `files ${files.sort().join(' ')}; ${malformed} malformed lines in rotated files; newest rotated line ${maxRotated}, 0.log reaches ${fresh}, /containerLogs tail line ${tailMax}${reopens}`];
      });

      // ---- (r) restarts ----
      const snapshot = async (): Promise<Map<string, { id: string; restarts: number; pid: string }>> => {
        const out = new Map<string, { id: string; restarts: number; pid: string }>();
        for (const podName of ['web', 'steady']) {
          for (const c of (await api.pod(podName))?.status?.containerStatuses ?? []) {
            const id = (c.containerID ?? '').replace(/^\w+:\/\//, '');
            const inspect = id ? await ctl(runtime, ['inspect', '-o', 'json', id]) : undefined;
            out.set(`${podName}/${c.name}`, { id, restarts: c.restartCount, pid: /"pid":\s*(\d+)/.exec(inspect?.stdout ?? '')?.[1] ?? '?' });
          }
        }
        return out;
      };
      const differences = (a: Map<string, { id: string; restarts: number; pid: string }>, b: Map<string, { id: string; restarts: number; pid: string }>, except: string[] = []) => {
        const out: string[] = [];
        for (const [k, v] of a) {
          if (except.includes(k)) continue;
          const w = b.get(k);
          if (!w) out.push(`${k} gone`);
          else if (w.id !== v.id || w.restarts !== v.restarts || w.pid !== v.pid || v.pid === '?') out.push(`${k}: id ${v.id.slice(0, 12)}->${w.id.slice(0, 12)} restarts ${v.restarts}->${w.restarts} pid ${v.pid}->${w.pid}`);
        }
        return out;
      };
      const allRunning = async () => {
        for (const podName of ['web', 'steady']) {
          const cs = (await api.pod(podName))?.status?.containerStatuses ?? [];
          if (cs.length === 0 || !cs.every((c) => c.state?.running && c.ready)) return false;
        }
        return true;
      };
      await checks.try('r: kubelet restarted: no container restarts (same ids, restartCount, pids)', async () => {
        await waitFor('web and steady running', 30_000, allRunning);
        const before = await snapshot();
        await stopProcess(kubelet, 'SIGTERM', 15_000);
        const stoppedAt = Date.now();
        kubelet = await startKubelet();
        await waitHealthy();
        await waitFor('web and steady running again in /pods', 60_000, allRunning);
        // The kubelet syncs every pod as it starts: whatever it would restart, it has by then.
        await sleep(6000);
        const diff = differences(before, await snapshot());
        return [diff.length === 0, `${before.size} containers, restarted ${((Date.now() - stoppedAt) / 1000).toFixed(0)}s ago; ${diff.length ? diff.join('; ') : 'none changed'}`];
      });
      if (runtime.restart) {
        for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
          await checks.try(`r: berthd ${signal} and restart: containers run on, kubelet reconnects, an exit while down is reported`, async () => {
            await waitFor('web and steady running', 60_000, allRunning);
            const before = await snapshot();
            const name = `quitter-${signal.toLowerCase()}`;
            const quitter = before.get(`steady/${name}`)!;
            let exitedWhileDown = false;
            await runtime.restart!(signal, async () => {
              await writeFile(join(hostDir, `quit-${signal}`), '');
              exitedWhileDown = await waitFor('quitter to exit while berthd is down', 10_000, async () => !existsSync(join(hostDir, `quit-${signal}`)), 200).catch(() => false);
              await sleep(1000);
            });
            const back = Date.now();
            const s = await waitFor('quitter restarted by the kubelet after its exit 7', 90_000, async () => {
              const c = status(await api.pod('steady'), name);
              return c && c.restartCount === quitter.restarts + 1 && c.state?.running && c.lastState?.terminated?.exitCode === 7 ? c : undefined;
            }, 500);
            const seen = (Date.now() - back) / 1000;
            await sleep(2000);
            const diff = differences(before, await snapshot(), [`steady/${name}`]);
            return [exitedWhileDown && diff.length === 0, `${name} exited while berthd was down: ${exitedWhileDown}; restarted by the kubelet ${seen.toFixed(1)}s after berthd came back (restartCount ${s.restartCount}, last exit ${s.lastState?.terminated?.exitCode}); others: ${diff.length ? diff.join('; ') : 'none changed'}`];
          });
        }
      }
    }

    await runtime.notePods?.();
    const notedNetns = (await runtime.netns()).length;

    // ---- (d) removing the manifest stops the pod gracefully ----
    if (webReady) {
      await checks.try('d: removing web\'s manifest: SIGTERM trapped, exit 0 within the grace period', async () => {
        const pod = await api.pod('web');
        const mainBefore = await running(runtime, 'web', 'main');
        const logPath = join(podLogs, `default_web-${NODE}_${pod!.metadata.uid}`, 'main', '0.log');
        const removedAt = Date.now();
        await rm(join(manifestDir, 'web.json'));
        // The kubelet drops a removed static pod from /pods at once and stops it in the
        // background: the container's own exit tells when the stop is done.
        let markerAt = 0;
        let logText = '';
        const exited = await waitFor('main to exit', 30_000, async () => {
          if (!markerAt && existsSync(join(hostDir, 'term-main'))) markerAt = Date.now();
          logText = (await readFile(logPath, 'utf8').catch(() => '')) || logText;
          const c = (await containers(runtime, 'web', 'main')).find((x) => x.id === mainBefore.id);
          return !c || c.state === 'CONTAINER_EXITED' ? (c ?? 'gone') : undefined;
        }, 250);
        const exitedAfter = (Date.now() - removedAt) / 1000;
        logText = (await readFile(logPath, 'utf8').catch(() => '')) || logText;
        let exit = 'unknown (container gone)';
        if (exited !== 'gone') {
          const inspect = await ctl(runtime, ['inspect', '-o', 'json', mainBefore.id]);
          if (inspect.code === 0) exit = String((JSON.parse(inspect.stdout) as { status: { exitCode?: number } }).status.exitCode ?? 0);
        }
        await waitFor('web gone from the kubelet', 30_000, async () => !(await api.pod('web')));
        const trapped = logText.includes('got SIGTERM') && logText.includes('bye');
        return [Boolean(markerAt) && trapped && exit === '0' && exitedAfter < 10, `trap ran ${markerAt ? `${((markerAt - removedAt) / 1000).toFixed(1)}s` : 'never'} after removal; exited ${exitedAfter.toFixed(1)}s after, code ${exit}; log has "got SIGTERM": ${logText.includes('got SIGTERM')}, "bye": ${logText.includes('bye')}`];
      });
    }
    if (gated) {
      log('SKIP d: the GC and nothing-left checks in berth-gates: the same as in the plain berth run, and its ~30 s wait for the kubelet\'s GC is kept out of CI');
      return await finish();
    }
    await checks.try('d: all manifests removed: the kubelet removes every sandbox (its GC)', async () => {
      for (const f of await readdir(manifestDir)) await rm(join(manifestDir, f));
      const removedAt = Date.now();
      await waitFor('the kubelet to forget every pod', 60_000, async () => (await api.pods()).length === 0);
      const pods = await waitFor('no sandbox left', 150_000, async () => {
        const r = await ctl(runtime, ['pods', '-o', 'json']);
        if (r.code !== 0) throw new Error(r.stderr);
        return ((JSON.parse(r.stdout) as { items: unknown[] }).items ?? []).length === 0 ? 'none' : undefined;
      }, 3000).catch((err: Error) => err.message);
      return [pods === 'none', `${pods === 'none' ? `sandboxes removed ${((Date.now() - removedAt) / 1000).toFixed(0)}s after the manifests` : pods}`];
    });
    await checks.try('d: nothing left: processes, pod cgroups, mounts, netns', async () => {
      const procs = await processesBelow(cgroupRoot);
      const podCgroups = (await cgroupsBelow(cgroupRoot)).filter((d) => /\/pod[0-9a-f-]{36}$/.test(d));
      const mounts = (await mountsUnder([...runtime.dirs, rootDir])).filter((p) => !/\/state\/(ns|rro)$|\/state$|\/root\/overlay$/.test(p));
      const netns = await runtime.netns();
      const ok = procs.length === 0 && podCgroups.length === 0 && mounts.length === 0 && netns.length === 0;
      return [ok, `processes ${procs.length}${procs[0] ? ` (${procs.slice(0, 3).join('; ')})` : ''}, pod cgroups ${podCgroups.length}${podCgroups[0] ? ` (${podCgroups[0]})` : ''}, mounts ${mounts.length}${mounts[0] ? ` (${mounts.slice(0, 3).join(' ')})` : ''}, netns ${netns.length}${runtime.notePods ? ` of the ${notedNetns} the pods had` : ''}${netns[0] ? ` (${netns.join(' ')})` : ''}`];
    });
    return await finish();
  } catch (err) {
    checks.add('run', false, (err as Error).stack ?? String(err));
    return await finish();
  }

  async function finish(): Promise<RuntimeResult> {
    await scope.close();
    return { checks: checks.list, failedRpcs: rt?.name === 'berth' ? failedRpcs(rt.logs()) : [], kubeletWarnings: klogWarnings(kubeletLog), seconds: (Date.now() - t0) / 1000 };
  }
}

// ---- main ----------------------------------------------------------------------------

async function main(): Promise<number> {
  const top = new Scope();
  closeOnSignals(top, log);
  try {
    const outDir = args.out ?? (await tempDir(top, 'e2e-kubelet-out-'));
    await mkdir(outDir, { recursive: true });
    const version = (await run(KUBELET, ['--version'])).stdout.trim();
    log(`${version}; results and logs in ${outDir}`);
    const registry = await startRegistry(top);
    await pushImage(registry, 'e2e/busybox', '1', { layers: [buildLayer(busyboxEntries(), 'gzip', 'docker')], format: 'docker', config: { Cmd: ['sh'] } });
    const image = `${registry.host}/e2e/busybox:1`;
    const pauseImage = await pushPauseImage(registry);

    const results = new Map<Variant, RuntimeResult>();
    for (const name of args.runtimes!.split(',').map((s) => s.trim()) as Variant[]) {
      if (!VARIANTS.includes(name)) throw new Error(`unknown runtime ${name} (${VARIANTS.join(', ')})`);
      results.set(name, await runOne(top, name, registry, image, pauseImage, outDir));
    }
    const report = render(version, results);
    process.stdout.write(report);
    await writeFile(join(outDir, 'report.txt'), report);
    let failedAll = 0;
    for (const v of ['berth', 'berth-gates'] as const) {
      const r = results.get(v);
      if (!r) continue;
      const failed = r.checks.filter((c) => !c.ok).length;
      failedAll += failed;
      process.stdout.write(`${v}: ${r.checks.length - failed} passed, ${failed} failed\n`);
    }
    return (results.has('berth') || results.has('berth-gates')) && failedAll === 0 ? 0 : 1;
  } finally {
    await top.close();
  }
}

function render(version: string, results: Map<Variant, RuntimeResult>): string {
  const names = [...results.keys()];
  const ids: string[] = [];
  for (const r of results.values()) for (const c of r.checks) if (!ids.includes(c.id)) ids.push(c.id);
  const width = Math.max(...ids.map((i) => i.length), 10);
  const out: string[] = ['', `==== kubelet e2e (${version}; berth-gates: berth with ${Object.keys(GATES).join(', ')}) ====`, `${'check'.padEnd(width)}  ${names.map((n) => n.padEnd(11)).join(' ')}`];
  for (const id of ids) {
    out.push(`${id.padEnd(width)}  ${names.map((n) => (results.get(n)!.checks.find((c) => c.id === id)?.ok === undefined ? '-' : results.get(n)!.checks.find((c) => c.id === id)!.ok ? 'PASS' : 'FAIL').padEnd(11)).join(' ')}`);
  }
  out.push(`${'seconds'.padEnd(width)}  ${names.map((n) => results.get(n)!.seconds.toFixed(0).padEnd(11)).join(' ')}`);
  for (const n of names) {
    const r = results.get(n)!;
    out.push('', `---- ${n}: details`);
    for (const c of r.checks) out.push(`${c.ok ? 'PASS' : 'FAIL'} ${c.id}: ${c.detail}`);
    if (n !== 'containerd') {
      out.push('', `---- ${n}: CRI calls that failed or were unimplemented (${Math.max(0, r.failedRpcs.length - 1)} kinds)`);
      out.push(...(r.failedRpcs.length > 1 ? r.failedRpcs.slice(1) : ['(none)']), r.failedRpcs[0] ?? '');
    }
    out.push('', `---- ${n}: kubelet warnings and errors (${r.kubeletWarnings.length} kinds)`);
    out.push(...(r.kubeletWarnings.length ? r.kubeletWarnings : ['(none)']));
  }
  return `${out.join('\n')}\n`;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
