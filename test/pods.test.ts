// Pod sandboxes through berthd with the real CNI plugins, in network namespaces and on
// a bridge the test made (only loopback and the test's own pod network are used).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { NamespaceMode, PodSandboxState, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { launchBerthd, startBerthd, type TestBerthd } from './helpers/berthd.js';
import { isRoot } from './helpers/paths.js';
import { startPodNetwork, type TestPodNetwork } from './helpers/pod-network.js';
import { run } from './helpers/processes.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';

const skip = !isRoot ? 'needs root (namespaces, CNI)' : !existsSync('/usr/lib/cni/bridge') ? 'containernetworking-plugins is not installed' : false;

function runtimeClient(t: { after(fn: () => unknown): void }, berthd: TestBerthd) {
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  return serviceClient(RuntimeService, channel);
}

function podConfig(name: string, extra: Record<string, unknown> = {}) {
  return {
    metadata: { name, namespace: 'berth-test', uid: `uid-${name}-${randomBytes(3).toString('hex')}`, attempt: 1 },
    hostname: `${name}-host`,
    log_directory: '/tmp',
    labels: { app: name, suite: 'pods' },
    annotations: { 'berth.test/kind': 'pod' },
    ...extra,
  };
}

async function berthdWithNetwork(t: { after(fn: () => unknown): void }, network?: TestPodNetwork) {
  const net = network ?? (await startPodNetwork(t));
  const berthd = await startBerthd(t, { cniConfDir: net.confDir });
  return { net, berthd };
}

/** Everything a pod could leak, to compare before and after. */
async function leakState(berthd: TestBerthd, net: TestPodNetwork) {
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(berthd.dir)).length;
  const links = (await run('ip', ['-o', 'link', 'show', 'master', net.bridge])).stdout.trim().split('\n').filter(Boolean).length;
  const reserved = (await readdir(join(net.ipamDir, net.name)).catch(() => [] as string[])).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length;
  const pins = (await readdir(join(berthd.dir, 'state', 'ns')).catch(() => [] as string[])).length;
  return { mounts, links, reserved, pins };
}

test('a pod gets an IP, lo up, its hostname, hosts and resolv.conf; two pods reach each other', { skip }, async (t) => {
  const { net, berthd } = await berthdWithNetwork(t);
  const dir = await tempDir(t);
  const configPath = join(dir, 'pod-a.json');
  await writeFile(configPath, JSON.stringify(podConfig('alpha', { dns_config: { servers: ['10.0.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] } })));
  const runp = await berthd.ctl(['runp', configPath]);
  assert.equal(runp.code, 0, runp.stderr + berthd.logs().slice(-3000));
  const podA = runp.stdout.trim();
  assert.match(podA, /^[0-9a-f]{64}$/);

  const inspect = JSON.parse((await berthd.ctl(['inspectp', podA])).stdout) as {
    status: { state: string; network: { ip: string }; metadata: { name: string }; labels: Record<string, string> };
    info: { namespaces: { network: string; uts: string }; podDir: string };
  };
  assert.equal(inspect.status.state, 'SANDBOX_READY');
  assert.equal(inspect.status.metadata.name, 'alpha');
  assert.equal(inspect.status.labels.app, 'alpha');
  const ipA = inspect.status.network.ip;
  assert.ok(ipA.startsWith(net.subnet.replace(/0\/24$/, '')), `pod IP ${ipA} is in ${net.subnet}`);

  const netns = inspect.info.namespaces.network;
  const addr = await run('nsenter', [`--net=${netns}`, 'ip', '-o', 'addr']);
  assert.match(addr.stdout, new RegExp(`eth0\\s+inet ${ipA.replace(/\./g, '\\.')}/24`));
  const lo = await run('nsenter', [`--net=${netns}`, 'ip', '-o', 'link', 'show', 'lo']);
  assert.match(lo.stdout, /state UNKNOWN|,UP/, 'lo is up');
  const hostname = await run('nsenter', [`--uts=${inspect.info.namespaces.uts}`, 'hostname']);
  assert.equal(hostname.stdout.trim(), 'alpha-host');
  const resolv = await readFile(join(inspect.info.podDir, 'resolv.conf'), 'utf8');
  assert.equal(resolv, 'search svc.cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n');
  const hosts = await readFile(join(inspect.info.podDir, 'hosts'), 'utf8');
  assert.match(hosts, new RegExp(`^${ipA.replace(/\./g, '\\.')}\\talpha-host$`, 'm'));

  await writeFile(join(dir, 'pod-b.yaml'), `metadata:\n  name: beta\n  namespace: berth-test\n  uid: uid-beta\n  attempt: 1\nhostname: beta-host\n`);
  const podB = (await berthd.ctl(['runp', join(dir, 'pod-b.yaml')])).stdout.trim();
  const statusB = JSON.parse((await berthd.ctl(['inspectp', podB])).stdout) as { status: { network: { ip: string } }; info: { namespaces: { network: string } } };
  const ping = await run('nsenter', [`--net=${statusB.info.namespaces.network}`, 'busybox', 'ping', '-c', '1', '-W', '2', ipA]);
  assert.equal(ping.code, 0, `pod B pings pod A: ${ping.stdout}${ping.stderr}`);

  const table = (await berthd.ctl(['pods'])).stdout;
  assert.match(table, /^POD ID\s+CREATED\s+STATE\s+NAME\s+NAMESPACE\s+ATTEMPT\s+RUNTIME$/m);
  assert.match(table, new RegExp(`^${podA.slice(0, 13)}\\s+.+ ago\\s+Ready\\s+alpha\\s+berth-test\\s+1\\s+runc$`, 'm'));
  const byLabel = JSON.parse((await berthd.ctl(['pods', '--label', 'app=alpha', '-o', 'json'])).stdout) as { items: Array<{ id: string }> };
  assert.deepEqual(byLabel.items.map((p) => p.id), [podA]);
  assert.deepEqual((await berthd.ctl(['pods', '-q', '--id', podB.slice(0, 8)])).stdout.trim(), podB);
});

test('a port mapping reaches a listener in the pod from the host', { skip }, async (t) => {
  const { net, berthd } = await berthdWithNetwork(t);
  const dir = await tempDir(t);
  const hostPort = 20000 + (randomBytes(2).readUInt16BE(0) % 20000);
  await writeFile(join(dir, 'web.json'), JSON.stringify(podConfig('web', { port_mappings: [{ protocol: 0, container_port: 8080, host_port: hostPort }] })));
  const pod = (await berthd.ctl(['runp', join(dir, 'web.json')])).stdout.trim();
  const info = JSON.parse((await berthd.ctl(['inspectp', pod])).stdout) as { info: { namespaces: { network: string } } };
  const listener = spawn('nsenter', [`--net=${info.info.namespaces.network}`, 'busybox', 'nc', '-l', '-p', '8080'], { stdio: ['pipe', 'ignore', 'ignore'] });
  cleanup(t).after(() => listener.kill('SIGKILL'));
  listener.stdin.end('hello from the pod\n');
  await sleep(300);
  // The host reaches the pod through portmap's DNAT on the bridge address.
  const received = await new Promise<string>((resolve, reject) => {
    const socket = connect(hostPort, net.gateway);
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    setTimeout(() => socket.destroy(new Error('timed out')), 5000);
  });
  assert.equal(received, 'hello from the pod\n');
  assert.equal((await berthd.ctl(['rmp', '--force', pod])).code, 0);
  const rules = (await run('iptables', ['-t', 'nat', '-S'])).stdout;
  assert.ok(!rules.includes(pod), 'removing the pod removed its port mapping rules');
});

test('stop then remove leaves nothing behind, and both are idempotent', { skip }, async (t) => {
  const { net, berthd } = await berthdWithNetwork(t);
  const client = runtimeClient(t, berthd);
  const before = await leakState(berthd, net);
  const cgroupParent = `/berth-test-${randomBytes(3).toString('hex')}/pod1`;
  const { podSandboxId: id } = await client.runPodSandbox({
    config: { ...podConfig('leaky'), logDirectory: '/tmp', linux: { cgroupParent } } as never,
  });
  const during = await leakState(berthd, net);
  // Network, UTS, IPC and (no namespace options: PID mode POD) the pod's PID namespace.
  assert.ok(during.links === before.links + 1 && during.reserved === before.reserved + 1 && during.pins === before.pins + 4, JSON.stringify({ before, during }));
  const init = (JSON.parse((await client.podSandboxStatus({ podSandboxId: id, verbose: true })).info.info!) as { pid: number }).pid;
  assert.equal((await readFile(`/proc/${init}/comm`, 'utf8')).trim(), 'catatonit', "the pod's PID namespace has its init");
  assert.ok(existsSync(`/sys/fs/cgroup/memory${cgroupParent}`), 'the pod cgroup parent exists');

  await client.stopPodSandbox({ podSandboxId: id });
  const stopped = await client.podSandboxStatus({ podSandboxId: id });
  assert.equal(stopped.status?.state, PodSandboxState.SANDBOX_NOTREADY);
  const initState = (await readFile(`/proc/${init}/stat`, 'utf8').catch(() => '')).split(') ')[1]?.[0];
  assert.ok(initState === undefined || initState === 'Z', `the pod's init is gone (${initState})`);
  assert.equal(stopped.status?.network?.ip, '');
  await client.stopPodSandbox({ podSandboxId: id });
  await client.removePodSandbox({ podSandboxId: id });
  await client.removePodSandbox({ podSandboxId: id });
  await client.stopPodSandbox({ podSandboxId: id });
  assert.deepEqual(await leakState(berthd, net), before);
  assert.ok(!existsSync(`/sys/fs/cgroup/memory${cgroupParent}`), 'the pod cgroup is gone');
  assert.ok(!existsSync(`/sys/fs/cgroup/memory${cgroupParent.split('/').slice(0, 2).join('/')}`), 'so is the parent berth made');
  await assert.rejects(client.podSandboxStatus({ podSandboxId: id }), { code: GrpcStatus.NOT_FOUND });
});

test('50 pods made at once and removed leave the host as it was', { skip }, async (t) => {
  const { net, berthd } = await berthdWithNetwork(t);
  const client = runtimeClient(t, berthd);
  const before = await leakState(berthd, net);
  const ids = await Promise.all(
    Array.from({ length: 50 }, (_, i) => client.runPodSandbox({ config: podConfig(`many-${i}`) as never }, { timeoutMs: 120_000 }).then((r) => r.podSandboxId)),
  );
  const statuses = await Promise.all(ids.map((id) => client.podSandboxStatus({ podSandboxId: id })));
  const ips = new Set(statuses.map((s) => s.status?.network?.ip));
  assert.equal(ips.size, 50, 'fifty distinct IPs');
  assert.equal((await client.listPodSandbox({})).items.length, 50);
  await Promise.all(ids.map((id) => client.stopPodSandbox({ podSandboxId: id }, { timeoutMs: 120_000 })));
  await Promise.all(ids.map((id) => client.removePodSandbox({ podSandboxId: id }, { timeoutMs: 120_000 })));
  assert.deepEqual(await leakState(berthd, net), before);
});

test('a broken config, a missing plugin and a failing plugin are clear errors that leave no pod', { skip }, async (t) => {
  const cases: Array<{ name: string; setup: (net: TestPodNetwork) => Promise<void>; error: RegExp }> = [
    {
      name: 'broken config',
      setup: async (net) => writeFile(join(net.confDir, '10-test.conflist'), '{ "cniVersion": "1.0.0", "name": '),
      error: /10-test\.conflist.*(JSON|valid)/i,
    },
    {
      name: 'missing plugin',
      setup: async (net) =>
        writeFile(join(net.confDir, '10-test.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [{ type: 'no-such-plugin' }] })),
      error: /no-such-plugin/,
    },
    {
      name: 'failing plugin',
      setup: async (net) =>
        writeFile(
          join(net.confDir, '10-test.conflist'),
          JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [{ type: 'bridge', bridge: net.bridge, ipam: { type: 'host-local', dataDir: net.ipamDir, ranges: [[{ subnet: 'not-a-subnet' }]] } }] }),
        ),
      error: /host-local|invalid CIDR|subnet/i,
    },
  ];
  for (const c of cases) {
    const net = await startPodNetwork(t);
    await c.setup(net);
    const { berthd } = await berthdWithNetwork(t, net);
    const client = runtimeClient(t, berthd);
    const before = await leakState(berthd, net);
    await assert.rejects(client.runPodSandbox({ config: podConfig('broken') as never }, { timeoutMs: 60_000 }), (err: GrpcCallError) => {
      assert.notEqual(err.code, GrpcStatus.OK);
      assert.match(err.details, c.error, `${c.name}: ${err.details}`);
      return true;
    });
    assert.deepEqual((await client.listPodSandbox({})).items, [], c.name);
    assert.deepEqual(await leakState(berthd, net), before, c.name);
    assert.deepEqual(await readdir(join(berthd.dir, 'state', 'pods')).catch(() => []), [], `${c.name}: no pod dir left`);
  }
});

test('the same metadata twice is refused, but a retry after the caller gave up gets the pod', { skip }, async (t) => {
  const { berthd } = await berthdWithNetwork(t);
  const client = runtimeClient(t, berthd);
  const config = podConfig('twice');
  const first = await client.runPodSandbox({ config: config as never });
  await assert.rejects(client.runPodSandbox({ config: config as never }), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.ALREADY_EXISTS);
    assert.match(err.details, new RegExp(`reserved for pod ${first.podSandboxId}`));
    return true;
  });

  // A caller whose deadline passes mid-creation: berth finishes the pod anyway, and the
  // kubelet's retry with the same metadata gets it instead of "name is reserved".
  const impatient = podConfig('impatient');
  // 5 ms: a pod start (namespaces, CNI ADD) takes longer; with 30 ms a quiet machine finished it in time.
  await assert.rejects(client.runPodSandbox({ config: impatient as never }, { timeoutMs: 5 }), { code: GrpcStatus.DEADLINE_EXCEEDED });
  const retry = await client.runPodSandbox({ config: impatient as never }, { timeoutMs: 60_000 });
  const named = (await client.listPodSandbox({ filter: { labelSelector: { app: 'impatient' } } })).items;
  assert.deepEqual(named.map((p) => p.id), [retry.podSandboxId], 'one pod, the one the retry got');
  assert.equal(named[0]!.state, PodSandboxState.SANDBOX_READY);
  await assert.rejects(client.runPodSandbox({ config: impatient as never }), { code: GrpcStatus.ALREADY_EXISTS });
});

test('host network pods share the host network; a bad runtime handler is refused', { skip }, async (t) => {
  const { net, berthd } = await berthdWithNetwork(t);
  const client = runtimeClient(t, berthd);
  const before = await leakState(berthd, net);
  const { podSandboxId } = await client.runPodSandbox({
    config: { ...podConfig('hostnet'), linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, ipc: NamespaceMode.NODE } } } } as never,
  });
  const status = await client.podSandboxStatus({ podSandboxId });
  assert.equal(status.status?.linux?.namespaces?.options?.network, NamespaceMode.NODE);
  assert.equal(status.status?.network?.ip, '');
  const during = await leakState(berthd, net);
  assert.equal(during.links, before.links, 'no veth for a host-network pod');
  await client.removePodSandbox({ podSandboxId });
  await assert.rejects(client.runPodSandbox({ config: podConfig('bad-handler') as never, runtimeHandler: 'kata' }), (err: GrpcCallError) => {
    assert.equal(err.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(err.details, /runtime handler "kata" is not configured/);
    return true;
  });
});

test('berthd killed with SIGKILL keeps its pods and their IPs; stopping them then releases everything', { skip }, async (t) => {
  const { net, berthd } = await berthdWithNetwork(t);
  const client = runtimeClient(t, berthd);
  const before = await leakState(berthd, net);
  const ids = await Promise.all([0, 1, 2].map((i) => client.runPodSandbox({ config: podConfig(`survivor-${i}`) as never }).then((r) => r.podSandboxId)));
  const ipsBefore = await Promise.all(ids.map(async (id) => (await client.podSandboxStatus({ podSandboxId: id })).status?.network?.ip));
  // A fourth pod as a crash right after its PID namespace init started would leave it:
  // still "creating", the init's pid not yet recorded. Recovery must undo it, init included.
  const crashed = (await client.runPodSandbox({ config: podConfig('crashed') as never })).podSandboxId;
  const crashedInit = (JSON.parse((await client.podSandboxStatus({ podSandboxId: crashed, verbose: true })).info.info!) as { pid: number }).pid;
  await berthd.stop('SIGKILL');
  const recordFile = join(berthd.dir, 'root', 'pods', `${crashed}.json`);
  const record = JSON.parse(await readFile(recordFile, 'utf8')) as Record<string, unknown>;
  await writeFile(recordFile, JSON.stringify({ ...record, state: 'creating', pidInit: undefined }));
  const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const after = runtimeClient(t, again);
  const listed = (await after.listPodSandbox({})).items;
  assert.deepEqual(listed.map((p) => p.id).sort(), [...ids].sort(), 'the interrupted pod was undone');
  const initState = (await readFile(`/proc/${crashedInit}/stat`, 'utf8').catch(() => '')).split(') ')[1]?.[0];
  assert.ok(initState === undefined || initState === 'Z', `the interrupted pod's init was killed (${initState})`);
  assert.ok(listed.every((p) => p.state === PodSandboxState.SANDBOX_READY));
  const ipsAfter = await Promise.all(ids.map(async (id) => (await after.podSandboxStatus({ podSandboxId: id })).status?.network?.ip));
  assert.deepEqual(ipsAfter, ipsBefore);
  for (const id of ids) {
    await after.stopPodSandbox({ podSandboxId: id });
    await after.removePodSandbox({ podSandboxId: id });
  }
  assert.deepEqual(await leakState(again, net), before);
});

test('bandwidth annotations reach the bandwidth plugin as rates', { skip: skip || (!existsSync('/usr/lib/cni/bandwidth') && 'no bandwidth plugin') }, async (t) => {
  const net = await startPodNetwork(t, { extraPlugins: [{ type: 'bandwidth', capabilities: { bandwidth: true } }] });
  const { berthd } = await berthdWithNetwork(t, net);
  const client = runtimeClient(t, berthd);
  const { podSandboxId } = await client.runPodSandbox({
    config: { ...podConfig('limited'), annotations: { 'kubernetes.io/ingress-bandwidth': '1M', 'kubernetes.io/egress-bandwidth': '2M' } } as never,
  });
  // The plugin shapes both directions on the host: the veth (traffic into the pod) and
  // an ifb device (traffic out of it).
  const host = (await run('tc', ['qdisc', 'show'])).stdout;
  assert.match(host, /tbf .*rate 1Mbit/, `ingress limit: ${host}`);
  assert.match(host, /tbf .*rate 2Mbit/, `egress limit: ${host}`);
  await client.removePodSandbox({ podSandboxId });
  await assert.rejects(
    client.runPodSandbox({ config: { ...podConfig('badrate'), annotations: { 'kubernetes.io/ingress-bandwidth': 'fast' } } as never }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /not a quantity/.test(err.details),
  );
});
