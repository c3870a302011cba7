// berthd's configuration: defaults, file, overrides and the errors a bad file gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { configToToml, defaultConfig, loadConfig, parseConfig } from '../src/config/config.js';
import { tempDir } from './helpers/tmp.js';

test('an empty file gives the documented defaults', () => {
  const config = parseConfig({});
  assert.equal(config.listen, 'unix:///run/berth/berth.sock');
  assert.equal(config.root, '/var/lib/berth');
  assert.equal(config.state, '/run/berth');
  assert.equal(config.default_runtime, 'runc');
  assert.equal(config.runtimes.runc?.path, '/usr/sbin/runc');
  assert.equal(config.cni.conf_dir, '/etc/cni/net.d');
  assert.deepEqual(config.cni.bin_dirs, ['/usr/lib/cni', '/opt/cni/bin']);
  assert.equal(config.seccomp_use_default_when_empty, false, 'no profile named: unconfined, as the CRI says');
});

test('file values and tables are read', () => {
  const config = parseConfig(
    parseToml(`
log_level = "debug"
seccomp_use_default_when_empty = true
cgroup_driver = "systemd"
default_runtime = "runsc"
[runtimes.runsc]
path = "/opt/runsc"
options = ["--platform=ptrace"]
[registries."docker.io"]
mirrors = ["http://127.0.0.1:5000"]
[registries."127.0.0.1:5000"]
insecure = true
[stream]
port = 10010
`) as Record<string, unknown>,
  );
  assert.equal(config.log_level, 'debug');
  assert.equal(config.cgroup_driver, 'systemd');
  assert.deepEqual(config.runtimes.runsc, { path: '/opt/runsc', options: ['--platform=ptrace'] });
  assert.equal(config.runtimes.runc?.path, '/usr/sbin/runc', 'unlisted default handlers stay');
  assert.deepEqual(config.registries['docker.io'], { mirrors: ['http://127.0.0.1:5000'], insecure: false });
  assert.equal(config.registries['127.0.0.1:5000']?.insecure, true);
  assert.equal(config.stream.port, 10010);
  assert.equal(config.seccomp_use_default_when_empty, true);
});

test('unknown keys and bad values are errors that name the key', () => {
  const cases: Array<[string, RegExp]> = [
    ['lisen = "unix:///x.sock"', /unknown key "lisen"/],
    ['[cni]\nconfdir = "/x"', /unknown key "cni.confdir"/],
    ['[runtimes.runc]\npth = "/x"', /unknown key "runtimes.runc.pth"/],
    ['log_level = "loud"', /log_level must be one of trace, debug, info, warn, error, fatal/],
    ['cgroup_driver = 3', /cgroup_driver must be a string/],
    ['listen = "tcp://1.2.3.4:1"', /listen must be a unix socket endpoint/],
    ['root = "relative/dir"', /root must be an absolute path/],
    ['[stream]\nport = 70000', /stream.port must be a whole number from 0 to 65535/],
    ['[registries."docker.io"]\nmirrors = ["ftp://x"]', /registries.docker.io.mirrors must be an http/],
    ['default_runtime = "kata"', /default_runtime "kata" is not a configured runtime/],
    ['[runtimes.kata]\noptions = []', /runtimes.kata.path is required/],
    ['seccomp_use_default_when_empty = "yes"', /seccomp_use_default_when_empty must be true or false, not string "yes"/],
  ];
  for (const [toml, message] of cases) {
    assert.throws(() => parseConfig(parseToml(toml) as Record<string, unknown>), message, toml);
  }
});

test('command-line overrides win over the file; a missing default file means defaults', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'berth.toml');
  await writeFile(path, 'root = "/srv/berth"\nlog_level = "warn"\n');
  const config = loadConfig({ path, overrides: { root: '/other', log_level: undefined } });
  assert.equal(config.root, '/other');
  assert.equal(config.log_level, 'warn');
  assert.throws(() => loadConfig({ path: join(dir, 'missing.toml') }), /cannot read config/);
  await writeFile(path, 'root = \n');
  assert.throws(() => loadConfig({ path }), /is not valid TOML/);
});

test('the printed config reads back as the same config', () => {
  const config = defaultConfig();
  config.registries['docker.io'] = { mirrors: ['http://127.0.0.1:5000'], insecure: false };
  const again = parseConfig(parseToml(configToToml(config)) as Record<string, unknown>);
  assert.deepEqual(again, config);
});
