// berth's CNI library against the real plugins of containernetworking-plugins 1.1.1, in
// network namespaces the test creates (`ip netns add`) on a bridge of its own. Only
// loopback and those namespaces carry traffic: ipMasq is off, host ports are bound to
// 127.0.0.1, and each test subnet gets a FORWARD guard dropping anything that would leave
// it. Namespaces, bridges, guards, portmap's chains, ip_forward and host-local's store
// (a temp dataDir) are all put back afterwards, even when a test fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError } from '../src/errors.js';
import { CniError, CniManager, requestConfig, type CniAttachment } from '../src/network/cni.js';
import { scanNetworkConfigs } from '../src/network/cni-config.js';
import { convertResult } from '../src/network/cni-result.js';
import { bringUpLoopback, loopbackNetwork } from '../src/network/loopback.js';
import { isRoot } from './helpers/paths.js';
import { run, stopProcess } from './helpers/processes.js';
import { freePort } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { cleanup } from './helpers/scope.js';

const PLUGINS = '/usr/lib/cni';
const skip = !isRoot ? 'needs root (network namespaces, bridges, iptables)' : !existsSync(join(PLUGINS, 'bridge')) ? `containernetworking-plugins is not installed (${PLUGINS}/bridge)` : false;

type T = { after(fn: () => unknown): void };

// The bridge plugin turns on net.ipv4.ip_forward for a gateway bridge, and portmap adds
// chains it never removes (CNI-HOSTPORT-*): both are put back as they were.
let ipForwardBefore = '';
let portmapChainsBefore = true;
before(async () => {
  if (skip) return;
  ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  portmapChainsBefore = (await run('iptables', ['-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT'])).code === 0;
});
after(async () => {
  if (skip) return;
  if (ipForwardBefore) await writeFile('/proc/sys/net/ipv4/ip_forward', `${ipForwardBefore}\n`);
  if (!portmapChainsBefore) await removePortmapChains();
});

/** portmap's shared chains, unless someone (another pod network) still has a mapping in them. */
async function removePortmapChains(): Promise<void> {
  const nat = (...args: string[]) => run('iptables', ['-t', 'nat', ...args]);
  const dnat = await nat('-S', 'CNI-HOSTPORT-DNAT');
  if (dnat.code !== 0 || dnat.stdout.includes('-A CNI-HOSTPORT-DNAT')) return;
  await nat('-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT');
  await nat('-D', 'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT');
  await nat('-D', 'POSTROUTING', '-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ');
  for (const chain of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK']) {
    await nat('-F', chain);
    await nat('-X', chain);
  }
}

interface TestNetwork {
  dir: string;
  confDir: string;
  /** host-local's dataDir: `<name>/<ip>` per reservation. */
  ipamDir: string;
  cacheDir: string;
  name: string;
  bridge: string;
  subnet: string;
  /** "10.x.y." */
  prefix: string;
  cni: CniManager;
}

const subnetsTaken = new Set<string>();

/** A 10.x.y.0/24 that no route or address of the host touches (nor another test's). */
async function freeSubnet(): Promise<string> {
  const host = (await run('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout + (await run('ip', ['-4', 'addr'])).stdout;
  for (let i = 0; i < 100; i++) {
    const [a, b] = randomBytes(2);
    const candidate = `10.${200 + (a! % 50)}.${b}.`;
    if (!host.includes(candidate) && !subnetsTaken.has(candidate)) {
      subnetsTaken.add(candidate);
      return `${candidate}0/24`;
    }
  }
  throw new Error('no free 10.x.y.0/24 for a test network');
}

/**
 * A test network: a conf dir, a bridge name and subnet of its own, the FORWARD guard,
 * and a CniManager on them. Afterwards: whatever is still attached is DELeted through
 * the cache, then the bridge and the guard go.
 */
async function testNetwork(t: T, options: { binDirs?: string[]; timeoutMs?: number } = {}): Promise<TestNetwork> {
  const suffix = randomBytes(3).toString('hex');
  const subnet = await freeSubnet();
  const guard = ['FORWARD', '-s', subnet, '!', '-d', subnet, '-j', 'DROP'];
  const bridge = `bt${suffix}`;
  let cni: CniManager | undefined;
  // Registered before the temp dir (after-hooks run in order): the cache must still be
  // there to DEL what a failed test left attached.
  cleanup(t).after(async () => {
    for (const entry of (await cni?.cachedAttachments()) ?? []) {
      await cni!.del(entry.config, { containerId: entry.containerId, netns: entry.netns, ifName: entry.ifName }).catch(() => undefined);
    }
    await run('ip', ['link', 'del', bridge]);
    await run('iptables', ['-D', ...guard]);
  });
  const added = await run('iptables', ['-I', ...guard]);
  if (added.code !== 0) throw new Error(`iptables: ${added.stderr}`);
  const dir = await tempDir(t, 'cni-');
  const net: TestNetwork = {
    dir,
    confDir: join(dir, 'net.d'),
    ipamDir: join(dir, 'ipam'),
    cacheDir: join(dir, 'cache'),
    name: `berth-cni-${suffix}`,
    bridge,
    subnet,
    prefix: subnet.replace(/0\/24$/, ''),
    cni: new CniManager({ confDir: join(dir, 'net.d'), binDirs: options.binDirs ?? [PLUGINS], cacheDir: join(dir, 'cache'), timeoutMs: options.timeoutMs }),
  };
  cni = net.cni;
  await mkdir(net.confDir);
  await mkdir(net.ipamDir);
  return net;
}

/** bridge (gateway, no masquerade) + host-local in the test's dataDir + portmap. */
function bridgePlugins(net: TestNetwork, ipam: Record<string, unknown> = {}): object[] {
  return [
    {
      type: 'bridge',
      bridge: net.bridge,
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', dataDir: net.ipamDir, ranges: [[{ subnet: net.subnet }]], routes: [{ dst: '0.0.0.0/0' }], ...ipam },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ];
}

async function writeConf(net: TestNetwork, file: string, doc: unknown): Promise<void> {
  await writeFile(join(net.confDir, file), typeof doc === 'string' ? doc : JSON.stringify(doc, null, 1));
}

interface TestNetns {
  name: string;
  path: string;
}

/** A network namespace of the test's own, deleted afterwards. */
async function netns(t: T): Promise<TestNetns> {
  const name = `berth-cni-${randomBytes(4).toString('hex')}`;
  const made = await run('ip', ['netns', 'add', name]);
  if (made.code !== 0) throw new Error(`ip netns add: ${made.stderr}`);
  cleanup(t).after(() => run('ip', ['netns', 'del', name]));
  return { name, path: `/run/netns/${name}` };
}

function attachment(ns: TestNetns, extra: Partial<CniAttachment> = {}): CniAttachment {
  const id = `cnitest${randomBytes(6).toString('hex')}`;
  return {
    containerId: id,
    netns: ns.path,
    ifName: 'eth0',
    args: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', 'berth-test'],
      ['K8S_POD_NAME', id],
      ['K8S_POD_INFRA_CONTAINER_ID', id],
      ['K8S_POD_UID', `uid-${id}`],
    ],
    ...extra,
  };
}

async function sh(command: string, args: string[]): Promise<string> {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** host-local's reservations (files named after the IP). */
async function reservations(net: TestNetwork): Promise<string[]> {
  return (await readdir(join(net.ipamDir, net.name)).catch(() => [] as string[])).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
}

/** Link names inside a namespace. */
async function links(ns: TestNetns): Promise<string[]> {
  const out = await sh('ip', ['-n', ns.name, '-o', 'link', 'show']);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(': ')[1]!.split('@')[0]!);
}

function ipOf(address: string): string {
  return address.split('/')[0]!;
}

test('config lists: sibling plugin folders, loadOnlyInlinedPlugins, request configs, result versions (no root needed)', async (t) => {
  const dir = await tempDir(t, 'cni-conf-');
  await writeFile(join(dir, '10-a.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'alpha', plugins: [{ type: 'bridge' }] }));
  await mkdir(join(dir, 'alpha'));
  await writeFile(join(dir, 'alpha', '20-tuning.conf'), JSON.stringify({ type: 'tuning', sysctl: {} }));
  await writeFile(join(dir, 'alpha', '10-portmap.conf'), JSON.stringify({ type: 'portmap' }));
  await writeFile(join(dir, 'alpha', 'ignored.txt'), 'not a plugin');
  await writeFile(join(dir, '20-b.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'beta', loadOnlyInlinedPlugins: true, plugins: [{ type: 'bridge' }] }));
  await mkdir(join(dir, 'beta'));
  await writeFile(join(dir, 'beta', '10-portmap.conf'), JSON.stringify({ type: 'portmap' }));
  await writeFile(join(dir, '30-c.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'gamma' }));
  await mkdir(join(dir, 'gamma'));
  await writeFile(join(dir, 'gamma', '10-broken.conf'), '{');
  await writeFile(join(dir, '40-d.conflist'), JSON.stringify({ cniVersion: '9.9.9', cniVersions: ['1.0.0', '9.9.9'], name: 'delta', plugins: [{ type: 'bridge' }] }));
  await writeFile(join(dir, '50-e.conflist'), JSON.stringify({ cniVersion: '1.0.0', cniVersions: '1.0.0', name: 'epsilon', plugins: [{ type: 'bridge' }] }));
  const scan = await scanNetworkConfigs(dir);
  assert.deepEqual(scan.lists.map((l) => [l.name, l.plugins.map((p) => p.type)]), [
    ['alpha', ['bridge', 'portmap', 'tuning']],
    ['beta', ['bridge']],
    ['delta', ['bridge']],
  ]);
  assert.equal(scan.problems.length, 2);
  assert.match(scan.problems[0]!, /30-c\.conflist: plugin file .*gamma\/10-broken\.conf: not valid JSON/);
  assert.match(scan.problems[1]!, /50-e\.conflist: "cniVersions" must be a list of strings/);

  const plugin = { type: 'portmap', capabilities: { portMappings: true, mac: true }, runtimeConfig: { old: 1 }, prevResult: { old: 1 }, 'cni.dev/x': 1, args: { cni: { a: 'b' } } };
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }, { address: 'fd00::2/64' }] };
  const conf = JSON.parse(requestConfig('net', '0.4.0', plugin, { capabilityArgs: { portMappings: [], bandwidth: {} }, prevResult: prev }));
  assert.deepEqual(conf, {
    type: 'portmap',
    args: { cni: { a: 'b' } },
    name: 'net',
    cniVersion: '0.4.0',
    runtimeConfig: { portMappings: [] },
    prevResult: { cniVersion: '0.4.0', ips: [{ address: '10.0.0.2/24', version: '4' }, { address: 'fd00::2/64', version: '6' }] },
  });
  assert.deepEqual(convertResult(conf.prevResult, '1.0.0'), prev);
});

test('the pod network and its plugins are read again as soon as their files change, and kept otherwise (no root needed)', async (t) => {
  const dir = await tempDir(t, 'cni-watch-');
  const confDir = join(dir, 'net.d');
  const binDir = join(dir, 'bin');
  await mkdir(confDir);
  await mkdir(binDir);
  // A plugin that only answers VERSION, with the versions given.
  const plugin = (versions: string[]) => `#!/bin/sh\n[ "$CNI_COMMAND" = VERSION ] && echo '{"cniVersion":"1.0.0","supportedVersions":${JSON.stringify(versions)}}'\nexit 0\n`;
  const installPlugin = async (versions: string[]) => {
    // As a package upgrade does: a new file renamed over the old one.
    await writeFile(join(binDir, '.fake.new'), plugin(versions), { mode: 0o755 });
    await rename(join(binDir, '.fake.new'), join(binDir, 'fake'));
  };
  await installPlugin(['0.4.0', '1.0.0']);
  const cni = new CniManager({ confDir, binDirs: [binDir], cacheDir: join(dir, 'cache') });
  const conf = (name: string) => JSON.stringify({ cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0'], name, plugins: [{ type: 'fake' }] });

  await assert.rejects(cni.network(), /no network config/);
  await writeFile(join(confDir, '20-b.conflist'), conf('beta'));
  assert.equal((await cni.network()).name, 'beta', 'a config dropped in after a call is used by the next');
  assert.equal(await cni.network(), await cni.network(), 'unchanged files are not read again');
  await writeFile(join(confDir, '10-a.conflist'), conf('alpha'));
  assert.equal((await cni.network()).name, 'alpha', 'an earlier file added later wins at once');
  // Rewritten in place, same size: the file's stamp or the dir's inotify watch tells.
  await writeFile(join(confDir, '10-a.conflist'), conf('alphb'));
  let name = '';
  for (const until = Date.now() + 2000; Date.now() < until && name !== 'alphb'; await sleep(20)) name = (await cni.network()).name;
  assert.equal(name, 'alphb', 'a file rewritten in place is read again');
  // The network's plugin folder, made after the list was read.
  await mkdir(join(confDir, 'alphb'));
  await writeFile(join(confDir, 'alphb', '10-more.conf'), JSON.stringify({ type: 'fake', extra: true }));
  assert.deepEqual((await cni.network()).plugins.map((p) => p.extra ?? false), [false, true]);

  // Plugins: resolved and probed once per binary; a binary replaced or removed is noticed at the next call.
  const list = await cni.network();
  assert.equal(await cni.negotiateVersion(list), '1.0.0');
  assert.equal(await cni.negotiateVersion(list), '1.0.0');
  await installPlugin(['0.4.0']);
  assert.equal(await cni.negotiateVersion(list), '0.4.0', 'a replaced plugin is asked for its versions again');
  await rm(join(binDir, 'fake'));
  await assert.rejects(cni.negotiateVersion(list), (err: BerthError) => err.code === 'FailedPrecondition' && /"fake" .*was not found/.test(err.message));
  await installPlugin(['1.0.0']);
  assert.equal(await cni.negotiateVersion(list), '1.0.0');
});

test('ADD, CHECK and DEL through bridge, host-local and portmap (CNI 1.0.0)', { skip }, async (t) => {
  const net = await testNetwork(t);
  await writeConf(net, '10-pods.conflist', { cniVersion: '1.0.0', name: net.name, plugins: bridgePlugins(net) });
  const ns = await netns(t);
  const list = await net.cni.network();
  assert.equal(list.name, net.name);
  assert.equal(await net.cni.negotiateVersion(list), '1.0.0');

  const att = attachment(ns);
  const result = await net.cni.add(list, att);
  assert.equal(result.cniVersion, '1.0.0');
  const address = result.ips?.[0]?.address ?? '';
  assert.ok(address.startsWith(net.prefix) && address.endsWith('/24'), `address ${address} is in ${net.subnet}`);
  const eth0 = result.interfaces?.find((i) => i.name === 'eth0');
  assert.equal(eth0?.sandbox, ns.path);
  const hostVeth = result.interfaces?.find((i) => i.name.startsWith('veth'))?.name;
  assert.ok(hostVeth, 'the result names the host end of the veth');
  assert.match(await sh('ip', ['-n', ns.name, 'addr', 'show', 'eth0']), new RegExp(`inet ${address.replace(/\./g, '\\.')} `));

  // Cached on disk before add() returned, with what DEL needs after a restart.
  const cacheFile = join(net.cacheDir, 'results', `${net.name}+${att.containerId}+eth0.json`);
  assert.ok(existsSync(cacheFile), 'the result cache file exists');
  assert.deepEqual(await net.cni.cachedResult(net.name, att.containerId, 'eth0'), result);
  const entry = await net.cni.cachedAttachment(net.name, att.containerId, 'eth0');
  assert.equal(entry?.netns, ns.path);
  assert.deepEqual(entry?.args, att.args);
  assert.deepEqual(await reservations(net), [ipOf(address)]);

  await net.cni.check(list, att);

  await net.cni.del(list, att);
  assert.deepEqual(await links(ns), ['lo'], 'eth0 is gone from the namespace');
  assert.notEqual((await run('ip', ['link', 'show', hostVeth!])).code, 0, 'the host end of the veth is gone');
  assert.deepEqual(await reservations(net), [], 'the host-local reservation is released');
  assert.equal(existsSync(cacheFile), false, 'the cache entry is removed');
  assert.equal(await net.cni.cachedResult(net.name, att.containerId, 'eth0'), undefined);

  // DEL again (nothing cached, nothing attached) is fine too.
  await net.cni.del(list, att);
  // CHECK without an ADD has no prevResult to check against.
  await assert.rejects(net.cni.check(list, att), (err: BerthError) => err.code === 'FailedPrecondition' && /no cached result/.test(err.message));
});

test('two pods ping each other; a host port on 127.0.0.1 reaches a pod; DEL removes the mapping', { skip }, async (t) => {
  const net = await testNetwork(t);
  await writeConf(net, '10-pods.conflist', { cniVersion: '1.0.0', name: net.name, plugins: bridgePlugins(net) });
  const list = await net.cni.network();
  const [ns1, ns2] = [await netns(t), await netns(t)];
  const hostPort = await freePort();
  const a1 = attachment(ns1);
  const a2 = attachment(ns2, { capabilityArgs: { portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp', hostIP: '127.0.0.1' }] } });
  const ip1 = ipOf((await net.cni.add(list, a1)).ips![0]!.address);
  const ip2 = ipOf((await net.cni.add(list, a2)).ips![0]!.address);
  assert.notEqual(ip1, ip2);

  await sh('ip', ['netns', 'exec', ns1.name, 'busybox', 'ping', '-c', '1', '-W', '2', ip2]);
  await sh('ip', ['netns', 'exec', ns2.name, 'busybox', 'ping', '-c', '1', '-W', '2', ip1]);

  // A listener inside the second pod; the host connects to 127.0.0.1:hostPort. portmap
  // (snat on, its default) DNATs locally sent packets in nat OUTPUT, sets route_localnet
  // on the bridge so a 127.0.0.1 source may be routed to it, and masquerades them to the
  // bridge address: nothing else needs setting.
  const server = spawn('ip', ['netns', 'exec', ns2.name, process.execPath, '-e', `require('net').createServer((s) => s.end('hello from the pod\\n')).listen(8080, '0.0.0.0', () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanup(t).after(() => stopProcess(server, 'SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
    server.once('exit', (code) => reject(new Error(`the listener exited (${code})`)));
  });
  assert.equal(await fetchLine('127.0.0.1', hostPort), 'hello from the pod\n');
  const rules = (await sh('iptables', ['-t', 'nat', '-S'])).split('\n').filter((l) => l.includes(a2.containerId));
  assert.ok(rules.length > 0, 'portmap added its DNAT rule');

  // DEL without the capability args: the cached ones are used, or portmap 1.1.1 would
  // remove nothing (its DEL is a no-op without runtimeConfig.portMappings).
  await net.cni.del(list, { ...a2, capabilityArgs: undefined });
  assert.deepEqual((await sh('iptables', ['-t', 'nat', '-S'])).split('\n').filter((l) => l.includes(a2.containerId)), [], 'the mapping is gone');
  await assert.rejects(fetchLine('127.0.0.1', hostPort));
  await net.cni.del(list, a1);
  assert.deepEqual(await reservations(net), []);
});

test('DEL after the network namespace is gone releases the IP', { skip }, async (t) => {
  const net = await testNetwork(t);
  await writeConf(net, '10-pods.conflist', { cniVersion: '1.0.0', name: net.name, plugins: bridgePlugins(net) });
  const list = await net.cni.network();
  const ns = await netns(t);
  const att = attachment(ns);
  const result = await net.cni.add(list, att);
  const hostVeth = result.interfaces!.find((i) => i.name.startsWith('veth'))!.name;
  await sh('ip', ['netns', 'del', ns.name]);
  assert.equal(existsSync(ns.path), false);
  await net.cni.del(list, att);
  assert.deepEqual(await reservations(net), []);
  assert.equal(await net.cni.cachedResult(net.name, att.containerId, 'eth0'), undefined);
  // The kernel tears a deleted namespace down in the background, the veth with it.
  await eventually(async () => (await run('ip', ['link', 'show', hostVeth])).code !== 0, `${hostVeth} goes away with the namespace`);
  // A pin file left behind without its mount (a crash between umount and rm) is no
  // namespace either: passed as "" too.
  await writeFile(join(net.dir, 'stale-netns'), '');
  await net.cni.del(list, { ...att, netns: join(net.dir, 'stale-netns') });
  // ADD needs a live one.
  await assert.rejects(net.cni.add(list, att), (err: BerthError) => err.code === 'FailedPrecondition' && err.message.includes(ns.path));
});

test('a 0.4.0 list works, and a single-plugin .conf (0.3.1) is wrapped as a list', { skip }, async (t) => {
  const net = await testNetwork(t);
  await writeConf(net, '20-pods.conflist', { cniVersion: '0.4.0', name: net.name, plugins: bridgePlugins(net) });
  const ns = await netns(t);
  const list = await net.cni.network();
  assert.equal(list.cniVersion, '0.4.0');
  const att = attachment(ns);
  const result = await net.cni.add(list, att);
  assert.equal(result.cniVersion, '0.4.0');
  assert.ok(result.ips![0]!.address.startsWith(net.prefix));
  assert.equal((result.ips![0] as { version?: string }).version, '4', '0.4.0 results carry ips[].version');
  await net.cni.check(list, att);
  await net.cni.del(list, att);
  assert.deepEqual(await links(ns), ['lo']);
  assert.deepEqual(await reservations(net), []);

  // A .conf sorts first by name: it is the network now.
  const [bridge] = bridgePlugins(net);
  await writeConf(net, '10-single.conf', { cniVersion: '0.3.1', name: net.name, ...bridge });
  const single = await net.cni.network();
  assert.equal(single.file, join(net.confDir, '10-single.conf'));
  assert.equal(single.plugins.length, 1);
  assert.equal(single.plugins[0]!.type, 'bridge');
  const att2 = attachment(ns);
  const r2 = await net.cni.add(single, att2);
  assert.equal(r2.cniVersion, '0.3.1');
  assert.ok(r2.ips![0]!.address.startsWith(net.prefix));
  await net.cni.check(single, att2); // CHECK came with 0.4.0: a no-op here
  await net.cni.del(single, att2);
  assert.deepEqual(await links(ns), ['lo']);
  assert.deepEqual(await reservations(net), []);
});

test('config errors: missing plugin, broken JSON, unsupported versions, negotiation', { skip }, async (t) => {
  const net = await testNetwork(t);
  const ns = await netns(t);

  await assert.rejects(net.cni.network(), (err: BerthError) => err.code === 'FailedPrecondition' && err.message.includes('no network config'));

  await writeConf(net, '10-broken.conflist', '{ "cniVersion": "1.0.0", "name": ');
  await assert.rejects(net.cni.network(), (err: BerthError) => err.code === 'FailedPrecondition' && err.message.includes(join(net.confDir, '10-broken.conflist')) && /not valid JSON/.test(err.message));

  await writeConf(net, '10-broken.conflist', { cniVersion: '0.2.0', name: net.name, plugins: [{ type: 'bridge' }] });
  await assert.rejects(net.cni.network(), /cniVersion 0\.2\.0 is not supported/);
  await writeConf(net, '10-broken.conflist', { cniVersion: '1.0.0', name: net.name, plugins: [{ bridge: 'x' }] });
  await assert.rejects(net.cni.network(), /plugin 0 has no "type"/);
  await writeConf(net, '10-broken.conflist', { cniVersion: '1.0.0', name: 'bad name!', plugins: [{ type: 'bridge' }] });
  await assert.rejects(net.cni.network(), /network name "bad name!" is not valid/);
  await writeConf(net, '10-broken.conflist', { cniVersion: '1.0.0', name: net.name, plugins: [{ type: '../bin/sh' }] });
  await assert.rejects(net.cni.network(), /not a plugin file name/);

  // A missing plugin is refused before anything runs.
  await writeConf(net, '10-broken.conflist', { cniVersion: '1.0.0', name: net.name, plugins: [...bridgePlugins(net), { type: 'no-such-plugin' }] });
  const missing = await net.cni.network();
  await assert.rejects(net.cni.add(missing, attachment(ns)), (err: BerthError) => err.code === 'FailedPrecondition' && err.message.includes('"no-such-plugin"') && err.message.includes(PLUGINS));
  assert.deepEqual(await links(ns), ['lo']);

  // 1.1.0 alone: the 1.1.1 plugins stop at 1.0.0.
  await writeConf(net, '10-broken.conflist', { cniVersion: '1.1.0', name: net.name, plugins: bridgePlugins(net) });
  const tooNew = await net.cni.network();
  await assert.rejects(net.cni.add(tooNew, attachment(ns)), (err: BerthError) => err.code === 'FailedPrecondition' && /bridge supports .*1\.0\.0/.test(err.message));
  await assert.rejects(net.cni.status(tooNew), /do not all support/);

  // Offering 1.1.0 and 1.0.0: the highest every plugin speaks. GC is then a no-op and
  // STATUS succeeds (both came with 1.1.0).
  await writeConf(net, '10-broken.conflist', { cniVersion: '1.1.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'], name: net.name, plugins: bridgePlugins(net) });
  const offered = await net.cni.network();
  assert.equal(await net.cni.negotiateVersion(offered), '1.0.0');
  await net.cni.status(offered);
  await net.cni.gc(offered, []);
  const att = attachment(ns);
  assert.equal((await net.cni.add(offered, att)).cniVersion, '1.0.0');
  await net.cni.del(offered, att);
  assert.deepEqual(await reservations(net), []);

  // Bad attachment parameters never reach a plugin.
  await assert.rejects(net.cni.add(offered, { ...attachment(ns), containerId: '-bad id' }), (err: BerthError) => err.code === 'InvalidArgument');
  await assert.rejects(net.cni.add(offered, { ...attachment(ns), ifName: 'a/b' }), (err: BerthError) => err.code === 'InvalidArgument');
  await assert.rejects(net.cni.add(offered, attachment(ns, { args: [['K8S_POD_NAME', 'a;b']] })), (err: BerthError) => err.code === 'InvalidArgument');
});

test('plugin errors surface as CniError and leave nothing behind', { skip }, async (t) => {
  const net = await testNetwork(t);
  const ns = await netns(t);

  const [bridge, portmap] = bridgePlugins(net) as Array<Record<string, unknown>>;

  // A failure late in the chain undoes the plugins before it: the veth and the IP go.
  await writeConf(net, '10-pods.conflist', { cniVersion: '1.0.0', name: net.name, plugins: [bridge, portmap] });
  const late = await net.cni.network();
  const a1 = attachment(ns, { capabilityArgs: { portMappings: [{ hostPort: 0, containerPort: 0, protocol: 'tcp', hostIP: '127.0.0.1' }] } });
  await assert.rejects(net.cni.add(late, a1), (err: unknown) => err instanceof CniError && err.plugin === 'portmap' && err.command === 'ADD');
  assert.deepEqual(await links(ns), ['lo']);
  assert.deepEqual(await reservations(net), []);
  assert.equal(await net.cni.cachedResult(net.name, a1.containerId, 'eth0'), undefined);

  // bridge refuses its own config before it changes anything.
  await writeConf(net, '10-pods.conflist', { cniVersion: '1.0.0', name: net.name, plugins: [{ ...bridge, hairpinMode: 'not-a-bool' }, portmap] });
  const badOption = await net.cni.network();
  const a2 = attachment(ns);
  await assert.rejects(net.cni.add(badOption, a2), (err: unknown) => {
    assert.ok(err instanceof CniError, `a CniError: ${String(err)}`);
    assert.equal(err.plugin, 'bridge');
    assert.equal(err.cniCode, 999); // the Go plugins' catch-all code
    assert.equal(err.command, 'ADD');
    assert.equal(err.code, 'Internal');
    assert.match(err.message, /^plugin bridge failed \(CNI code 999\): failed to load netconf: .*hairpinMode/);
    return true;
  });
  assert.deepEqual(await links(ns), ['lo']);
  assert.equal(await net.cni.cachedResult(net.name, a2.containerId, 'eth0'), undefined);

  // host-local fails inside bridge after bridge made the veth: the undo (DEL of bridge)
  // removes the veth, and no IP was reserved. (Last here: on a bridge that never had an
  // address, such a failure leaves it with MAC 00:00:00:00:00:00 once the veth is gone,
  // and bridge 1.1.1 then fails every later ADD with "could not set bridge's mac".)
  await writeConf(net, '10-pods.conflist', { cniVersion: '1.0.0', name: net.name, plugins: bridgePlugins(net, { ranges: [[{ subnet: `${net.prefix}0/99` }]] }) });
  const badSubnet = await net.cni.network();
  const a3 = attachment(ns);
  await assert.rejects(net.cni.add(badSubnet, a3), (err: unknown) => {
    assert.ok(err instanceof CniError, `a CniError: ${String(err)}`);
    assert.equal(err.plugin, 'bridge');
    assert.ok(err.cniCode > 0);
    assert.match(err.message, /^plugin bridge failed \(CNI code \d+\): invalid CIDR address/);
    return true;
  });
  assert.deepEqual(await links(ns), ['lo'], 'no veth is left in the namespace');
  assert.equal((await sh('ip', ['-o', 'link', 'show', 'master', net.bridge])).trim(), '', 'no veth is left on the bridge');
  assert.deepEqual(await reservations(net), []);
  assert.equal(await net.cni.cachedResult(net.name, a3.containerId, 'eth0'), undefined);
});

test('loopback: set up directly, or through the loopback plugin as containerd does', { skip }, async (t) => {
  const dir = await tempDir(t, 'cni-lo-');
  const ns = await netns(t);
  await bringUpLoopback(ns.path);
  assert.match(await sh('ip', ['-n', ns.name, 'link', 'show', 'lo']), /<LOOPBACK,UP,LOWER_UP>/);
  await sh('ip', ['netns', 'exec', ns.name, 'busybox', 'ping', '-c', '1', '-W', '1', '127.0.0.1']);

  const ns2 = await netns(t);
  const cni = new CniManager({ confDir: join(dir, 'net.d'), binDirs: [PLUGINS], cacheDir: join(dir, 'cache') });
  const att = attachment(ns2, { ifName: 'lo' });
  const result = await cni.add(loopbackNetwork(), att);
  assert.deepEqual(result.ips?.map((ip) => ip.address).sort(), ['127.0.0.1/8', '::1/128']);
  assert.match(await sh('ip', ['-n', ns2.name, 'link', 'show', 'lo']), /UP/);
  await cni.del(loopbackNetwork(), att);
  assert.doesNotMatch(await sh('ip', ['-n', ns2.name, 'link', 'show', 'lo']), /,UP/);
});

/**
 * A plugin of the test's own that speaks CNI 1.1.0 (the 1.1.1 plugins stop at 1.0.0), to
 * see GC and STATUS requests on the wire: it logs each call's command, CNI_ARGS and stdin.
 */
async function scriptPlugins(t: T): Promise<{ binDir: string; log: () => Promise<Array<{ command: string; args: string; path: string; conf: Record<string, unknown> }>>; failStatus: string }> {
  const binDir = join(await tempDir(t, 'cni-bin-'), 'bin');
  await mkdir(binDir);
  const logFile = join(binDir, '..', 'calls.log');
  const failStatus = join(binDir, '..', 'fail-status');
  const script = `#!/bin/sh
input=$(cat)
printf '%s\\t%s\\t%s\\t%s\\n' "$CNI_COMMAND" "$CNI_ARGS" "$CNI_PATH" "$input" >> '${logFile}'
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
ADD) [ "$(basename "$0")" = slow ] && sleep 30
     echo '{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"192.0.2.200/32","interface":0}]}' ;;
STATUS) if [ -e '${failStatus}' ]; then echo '{"cniVersion":"1.1.0","code":50,"msg":"not ready","details":"the test said so"}'; exit 1; fi ;;
esac
exit 0
`;
  for (const name of ['recorder', 'slow']) {
    await writeFile(join(binDir, name), script);
    await chmod(join(binDir, name), 0o755);
  }
  const log = async () =>
    (await readFile(logFile, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [command, args, path, conf] = line.split('\t');
        return { command: command!, args: args!, path: path!, conf: JSON.parse(conf!) as Record<string, unknown> };
      });
  return { binDir, log, failStatus };
}

test('CNI 1.1.0: request configs, GC with valid attachments, STATUS, and plugin timeouts', { skip }, async (t) => {
  const plugins = await scriptPlugins(t);
  const net = await testNetwork(t, { binDirs: ['/nonexistent-berth-dir', plugins.binDir], timeoutMs: 1000 });
  await writeConf(net, '10-rec.conflist', {
    cniVersion: '1.1.0',
    name: net.name,
    plugins: [
      { type: 'recorder', capabilities: { portMappings: true, bandwidth: false }, runtimeConfig: { stale: true }, 'cni.dev/valid-attachments': ['stale'], keep: { nested: 1 } },
      { type: 'recorder', capabilities: { bandwidth: true } },
    ],
  });
  const list = await net.cni.network();
  const ns = await netns(t);
  const att = attachment(ns, {
    capabilityArgs: { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }], bandwidth: { ingressRate: 1000, ingressBurst: 2000 } },
  });
  await net.cni.add(list, att);
  await net.cni.check(list, att);
  await net.cni.status(list);
  await net.cni.gc(list, [{ containerId: att.containerId, ifName: 'eth0' }]);
  await net.cni.del(list, att);

  const calls = (await plugins.log()).filter((c) => c.command !== 'VERSION');
  assert.deepEqual(calls.map((c) => c.command), ['ADD', 'ADD', 'CHECK', 'CHECK', 'STATUS', 'STATUS', 'GC', 'GC', 'DEL', 'DEL']);
  const [add1, add2] = calls;
  assert.equal(add1!.path, `/nonexistent-berth-dir:${plugins.binDir}`);
  assert.equal(add1!.args, att.args!.map(([k, v]) => `${k}=${v}`).join(';'));
  // Name and version injected; only declared capabilities; reserved keys dropped; the rest kept.
  assert.deepEqual(add1!.conf, { type: 'recorder', keep: { nested: 1 }, name: net.name, cniVersion: '1.1.0', runtimeConfig: { portMappings: att.capabilityArgs!.portMappings } });
  assert.deepEqual(add2!.conf.runtimeConfig, { bandwidth: att.capabilityArgs!.bandwidth });
  assert.equal((add2!.conf.prevResult as { ips: Array<{ address: string }> }).ips[0]!.address, '192.0.2.200/32');
  for (const call of calls.filter((c) => c.command === 'CHECK' || c.command === 'DEL')) assert.ok(call.conf.prevResult, `${call.command} has prevResult`);
  const gc = calls.find((c) => c.command === 'GC')!;
  assert.deepEqual(gc.conf['cni.dev/valid-attachments'], [{ containerID: att.containerId, ifname: 'eth0' }]);
  assert.equal(gc.conf.runtimeConfig, undefined);
  assert.equal(gc.args, '', 'GC has no attachment parameters');
  const status = calls.find((c) => c.command === 'STATUS')!;
  assert.deepEqual(status.conf, { type: 'recorder', keep: { nested: 1 }, name: net.name, cniVersion: '1.1.0' });

  // STATUS reports a plugin's "not available".
  await writeFile(plugins.failStatus, '');
  await assert.rejects(net.cni.status(list), (err: unknown) => err instanceof CniError && err.cniCode === 50 && err.code === 'Unavailable' && err.message === 'plugin recorder failed (CNI code 50): not ready: the test said so');

  // disableGC / disableCheck are obeyed.
  const before = (await plugins.log()).length;
  await net.cni.gc({ ...list, disableGC: true }, []);
  await net.cni.check({ ...list, disableCheck: true }, att);
  assert.equal((await plugins.log()).length, before);

  // A plugin that hangs is killed at the timeout, and the ADD is undone.
  await writeConf(net, '10-rec.conflist', { cniVersion: '1.1.0', name: net.name, plugins: [{ type: 'recorder' }, { type: 'slow' }] });
  const slow = await net.cni.network();
  const started = Date.now();
  const hung = attachment(ns);
  await assert.rejects(net.cni.add(slow, hung), (err: BerthError) => err.code === 'DeadlineExceeded' && /slow did not finish ADD within 1000 ms/.test(err.message));
  assert.ok(Date.now() - started < 10_000);
  const undo = (await plugins.log()).slice(-2).map((c) => c.command);
  assert.deepEqual(undo, ['DEL', 'DEL'], 'both plugins got DEL after the timeout');
  assert.equal(await net.cni.cachedResult(net.name, hung.containerId, 'eth0'), undefined);
});

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(50);
  }
}

/** Connects, reads until the peer closes; rejects on refusal or after 5 s. */
function fetchLine(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer from ${host}:${port}`)));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}
