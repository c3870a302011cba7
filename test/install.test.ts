// scripts/install.sh into a staging root (DESTDIR): the package, the commands, the config
// from `berthd config`, the systemd unit; the installed commands run; a second install
// keeps an edited config; --uninstall removes what it installed and keeps the config.
// Then the acceptance flow: berthd started through the installed unit's ExecStart line
// (its config path pointed at a private socket, root and state), and the demo's calls
// through the installed berthctl found on PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rename, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { defaultConfig, parseConfig } from '../src/config/config.js';
import { BERTH_VERSION } from '../src/version.js';
import { isRoot } from './helpers/paths.js';
import { run, stopProcess, waitForSocket } from './helpers/processes.js';
import { containerTestSkip } from './helpers/containers.js';
import { removeAllPods } from './helpers/berthd.js';
import { startPodNetwork } from './helpers/pod-network.js';
import { startRegistry } from './helpers/registry.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { cleanup } from './helpers/scope.js';
import { tempDir } from './helpers/tmp.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/install.sh', import.meta.url));

test('install.sh installs berthd, berthctl and berth-csi, the config and the unit under DESTDIR/PREFIX; --uninstall removes them', { skip: !isRoot && 'needs root' }, async (t) => {
  const destdir = join(await tempDir(t, 'install-'), 'root');
  const prefix = '/opt/berth-test';
  const env = { ...process.env, DESTDIR: destdir, PREFIX: prefix };
  const install = await run('bash', [SCRIPT], { env });
  assert.equal(install.code, 0, install.stderr + install.stdout);
  assert.match(install.stdout, /--container-runtime-endpoint=unix:\/\/\/run\/berth\/berth\.sock/);

  const bin = join(destdir, prefix, 'bin');
  for (const cmd of ['berthd', 'berthctl', 'berth-csi']) {
    const version = await run(join(bin, cmd), ['--version'], { env: { PATH: '/usr/bin:/bin' } });
    assert.equal(version.code, 0, `${cmd}: ${version.stderr}`);
    assert.equal(version.stdout.trim(), BERTH_VERSION);
  }
  // The package is a copy: dist and production dependencies, no dev ones, no tests.
  const lib = join(destdir, prefix, 'lib/berth');
  assert.ok(existsSync(join(lib, 'dist/src/bin/berthd.js')));
  assert.ok(existsSync(join(lib, 'node_modules/@grpc/grpc-js/package.json')));
  assert.ok(!existsSync(join(lib, 'node_modules/typescript')), 'dev dependencies are left out');
  assert.ok(!existsSync(join(lib, 'dist/test')));

  // The config is `berthd config`'s defaults, and the installed berthd reads it back.
  const tomlPath = join(destdir, 'etc/berth/berth.toml');
  const toml = await readFile(tomlPath, 'utf8');
  assert.deepEqual(parseConfig(parseToml(toml) as Record<string, unknown>), defaultConfig());
  const shown = await run(join(bin, 'berthd'), ['config', '--config', tomlPath]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^listen = "unix:\/\/\/run\/berth\/berth\.sock"$/m);

  const unit = await readFile(join(destdir, 'etc/systemd/system/berthd.service'), 'utf8');
  for (const line of [`ExecStart=${prefix}/bin/berthd --config /etc/berth/berth.toml`, 'KillMode=mixed', 'Delegate=yes', 'Restart=on-failure', 'WantedBy=multi-user.target']) {
    assert.ok(unit.split('\n').includes(line), `${line} in the unit:\n${unit}`);
  }

  // Again: the package is replaced, an edited config kept.
  await writeFile(tomlPath, 'log_level = "debug"\n');
  const again = await run('bash', [SCRIPT], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /kept .*berth\.toml/);
  assert.equal(await readFile(tomlPath, 'utf8'), 'log_level = "debug"\n');
  assert.equal((await run(join(bin, 'berthctl'), ['--version'])).code, 0);

  const removed = await run('bash', [SCRIPT, '--uninstall'], { env });
  assert.equal(removed.code, 0, removed.stderr);
  for (const path of ['bin/berthd', 'bin/berthctl', 'bin/berth-csi', 'lib/berth']) assert.ok(!existsSync(join(destdir, prefix, path)), path);
  assert.ok(!existsSync(join(destdir, 'etc/systemd/system/berthd.service')));
  assert.ok(existsSync(tomlPath), 'the configuration stays');
});

test('install.sh refuses a relative PREFIX and unknown arguments', async () => {
  const relative = await run('bash', [SCRIPT], { env: { ...process.env, PREFIX: 'usr/local', DESTDIR: '/nonexistent-never-made' } });
  assert.equal(relative.code, 2);
  assert.match(relative.stderr, /PREFIX must be an absolute path/);
  const unknown = await run('bash', [SCRIPT, '--frobnicate'], { env: { ...process.env, DESTDIR: '' } });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /usage: .*--uninstall/);
});

test("the installed commands run the demo's flow: berthd through the unit's ExecStart line (private paths), berthctl on PATH", { skip: containerTestSkip }, async (t) => {
  const destdir = join(await tempDir(t, 'install-flow-'), 'root');
  const prefix = '/opt/berth-flow';
  const env = { ...process.env, DESTDIR: destdir, PREFIX: prefix };
  const install = await run('bash', [SCRIPT], { env });
  assert.equal(install.code, 0, install.stderr + install.stdout);
  cleanup(t).after(() => run('bash', [SCRIPT, '--uninstall'], { env }));
  const bin = join(destdir, prefix, 'bin');
  if (existsSync('/usr/bin/esbuild')) {
    // berthctl starts from its V8 startup snapshot through a sh script of builtins.
    const dist = join(destdir, prefix, 'lib/berth/dist');
    assert.match(await readFile(join(bin, 'berthctl'), 'utf8'), /^#!\/bin\/sh\n[^]*exec "[^"]+" --snapshot-blob "\$dist\/berthctl\.blob" "\$0" "\$@"\n/);
    assert.ok(existsSync(join(dist, 'berthctl.blob')), 'the V8 startup snapshot');
    assert.ok(existsSync(join(dist, 'berthctl.cjs.cache')), 'the bundle (the fallback) has its V8 code cache');
  }
  else process.stderr.write('install-flow: esbuild is not installed: berthctl runs unbundled\n');
  // The unit's ExecStart, with the config path (the only path on it) pointed at a private one.
  const unit = await readFile(join(destdir, 'etc/systemd/system/berthd.service'), 'utf8');
  const execStart = unit.split('\n').find((l) => l.startsWith('ExecStart='))!.slice('ExecStart='.length).split(' ');
  assert.deepEqual(execStart, [`${prefix}/bin/berthd`, '--config', '/etc/berth/berth.toml']);
  const dir = await tempDir(t, 'install-flow-state-');
  const socket = join(dir, 'berth.sock');
  const net = await startPodNetwork(t);
  const config = join(dir, 'berth.toml');
  await writeFile(config, [`listen = "unix://${socket}"`, `root = "${join(dir, 'root')}"`, `state = "${join(dir, 'state')}"`, '[cni]', `conf_dir = "${net.confDir}"`].join('\n'));
  const berthd = spawn(join(destdir, execStart[0]!), [execStart[1]!, config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  berthd.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  cleanup(t).after(async () => {
    await removeAllPods(`unix://${socket}`).catch(() => undefined);
    await stopProcess(berthd);
  });
  await waitForSocket(socket, 15_000, () => berthd.exitCode === null);

  // berthctl by name, from PATH, as an operator types it.
  const shell = { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, CRI_CONFIG_FILE: '/dev/null', CONTAINER_RUNTIME_ENDPOINT: `unix://${socket}` };
  const ctl = async (...args: string[]) => {
    const r = await run('berthctl', ['--timeout', '30s', ...args], { env: shell });
    assert.equal(r.code, 0, `berthctl ${args.join(' ')}: ${r.stderr}\n${logs.slice(-2000)}`);
    return r.stdout;
  };
  for (let i = 0; (await run('berthctl', ['version'], { env: shell })).code !== 0; i++) {
    assert.ok(i < 100, `berthd never served:\n${logs}`);
    await sleep(100);
  }
  assert.match(await ctl('version'), /^Version: {2}\S+\nRuntimeName: {2}berth\n/);
  if (existsSync('/usr/bin/esbuild')) {
    // With V8 flags in NODE_OPTIONS (which a snapshot refuses), and when the node that made
    // the snapshot has changed since (its mtime), the bundle answers instead; and through
    // a link from elsewhere, the package is still found. No warning on any path.
    const launcher = join(destdir, prefix, 'lib/berth/dist/berthctl-launcher.cjs');
    await rename(launcher, `${launcher}.away`);
    const fromSnapshot = await run('berthctl', ['version'], { env: shell });
    await rename(`${launcher}.away`, launcher);
    assert.equal(fromSnapshot.code, 0, `the snapshot answers without the bundle: ${fromSnapshot.stderr}`);
    assert.equal(fromSnapshot.stderr, '');
    const fallback = await run('berthctl', ['version'], { env: { ...shell, NODE_OPTIONS: '--max-old-space-size=200' } });
    assert.equal(fallback.code, 0, fallback.stderr);
    assert.match(fallback.stdout, /RuntimeName: {2}berth/);
    const stamp = join(destdir, prefix, 'lib/berth/dist/berthctl.blob.node');
    const made = await stat(stamp);
    await utimes(stamp, new Date(0), new Date(0));
    const changed = await run('berthctl', ['version'], { env: shell });
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(changed.stderr, '');
    await utimes(stamp, made.atime, made.mtime);
    const link = join(dir, 'berthctl-link');
    await symlink(join(bin, 'berthctl'), link);
    const linked = await run(link, ['ps', '-a'], { env: shell });
    assert.equal(linked.code, 0, linked.stderr);
    assert.equal(linked.stderr, '');
  }

  const registry = await startRegistry(t);
  await pushImage(registry, 'flow/busybox', '1', { layers: [buildLayer(busyboxEntries())], config: { Env: ['PATH=/bin'] } });
  const image = `${registry.host}/flow/busybox:1`;
  assert.match(await ctl('pull', image), /^Image is up to date for sha256:[0-9a-f]{64}\n$/);
  const logDir = await tempDir(t, 'install-flow-logs-');
  await writeFile(join(dir, 'pod.json'), JSON.stringify({ metadata: { name: 'flow', namespace: 'default', uid: 'flow-uid', attempt: 1 }, hostname: 'flow', log_directory: logDir }));
  await writeFile(join(dir, 'container.json'), JSON.stringify({ metadata: { name: 'hello' }, image: { image }, command: ['sh', '-c', 'echo hello from $(hostname)'], log_path: 'hello.log' }));
  const id = (await ctl('run', join(dir, 'container.json'), join(dir, 'pod.json'))).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  for (let i = 0; (await ctl('inspect', '-o', 'go-template', '--template', '{{.status.state}}', id)).trim() !== 'CONTAINER_EXITED'; i++) {
    assert.ok(i < 100, 'the container never exited');
    await sleep(100);
  }
  assert.equal(await ctl('logs', id), 'hello from flow\n');
  assert.match(await ctl('ps', '-a'), /hello/);
  const podId = (await ctl('pods', '-q')).trim();
  assert.match(await ctl('stopp', podId), /^Stopped sandbox /);
  assert.match(await ctl('rmp', podId), /^Removed sandbox /);
  assert.equal(await ctl('ps', '-a', '-q'), '');
});
