// A pod network of the test's own: a CNI config dir with a bridge (unique name), a
// host-local range in a subnet nothing else on the host uses (state in a temp dir),
// portmap, and a FORWARD guard so nothing from it can leave for any other address.
// Everything is removed after the test, even when it fails.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './processes.js';
import { tempDir } from './tmp.js';
import { cleanup } from './scope.js';

export interface TestPodNetwork {
  confDir: string;
  /** host-local's reservations: one file per IP in use. */
  ipamDir: string;
  bridge: string;
  subnet: string;
  /** The bridge's address on the host (the pods' gateway). */
  gateway: string;
  name: string;
}

export interface PodNetworkOptions {
  /** Plugins after bridge (default: portmap). */
  extraPlugins?: object[];
  /** Replace the whole plugin list (for broken configs). */
  plugins?: object[];
  cniVersion?: string;
}

export async function startPodNetwork(t: { after(fn: () => unknown): void }, options: PodNetworkOptions = {}): Promise<TestPodNetwork> {
  const dir = await tempDir(t, 'podnet-');
  const confDir = join(dir, 'net.d');
  const ipamDir = join(dir, 'ipam');
  await mkdir(confDir);
  await mkdir(ipamDir);
  const suffix = randomBytes(3).toString('hex');
  const bridge = `bt${suffix}`;
  const subnet = await freeSubnet();
  const gateway = subnet.replace(/0\/24$/, '1');
  const name = `berthtest-${suffix}`;
  const plugins = options.plugins ?? [
    {
      type: 'bridge',
      bridge,
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
    },
    ...(options.extraPlugins ?? [{ type: 'portmap', capabilities: { portMappings: true }, snat: true }]),
  ];
  await writeFile(join(confDir, '10-test.conflist'), JSON.stringify({ cniVersion: options.cniVersion ?? '1.0.0', name, plugins }, null, 1));
  // Pods may talk to each other and to the host, never past the bridge.
  await run('iptables', ['-I', 'FORWARD', '-s', subnet, '!', '-d', subnet, '-j', 'DROP']);
  cleanup(t).after(async () => {
    await run('iptables', ['-D', 'FORWARD', '-s', subnet, '!', '-d', subnet, '-j', 'DROP']);
    await removePortmapRules(name);
    await run('ip', ['link', 'del', bridge]);
  });
  return { confDir, ipamDir, bridge, subnet, gateway, name };
}

/** A 10.x.y.0/24 that no route or address of the host touches. */
async function freeSubnet(): Promise<string> {
  const routes = (await run('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout + (await run('ip', ['-4', 'addr'])).stdout;
  for (let i = 0; i < 50; i++) {
    const candidate = `10.${200 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]}`;
    if (!routes.includes(`${candidate}.`)) return `${candidate}.0/24`;
  }
  throw new Error('no free 10.x.y.0/24 for a test network');
}

/** portmap rules a test's pods left (a pod never removed, a berthd killed): by network name. */
export async function removePortmapRules(network: string): Promise<void> {
  const rules = (await run('iptables', ['-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT'])).stdout.split('\n');
  for (const rule of rules.filter((r) => r.includes(`name: \\"${network}\\"`))) {
    const chain = / -j (CNI-DN-\w+)/.exec(rule)?.[1];
    const args = rule.replace(/^-A /, '-D ').match(/"[^"\\]*(?:\\.[^"\\]*)*"|\S+/g)!.map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));
    await run('iptables', ['-t', 'nat', ...args]);
    if (chain) {
      await run('iptables', ['-t', 'nat', '-F', chain]);
      await run('iptables', ['-t', 'nat', '-X', chain]);
    }
  }
}
