// scripts/install.sh into a staging root (DESTDIR): the package, the commands, the config
// from `berthd config`, the systemd unit; the installed commands run; a second install
// keeps an edited config; --uninstall removes what it installed and keeps the config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { defaultConfig, parseConfig } from '../src/config/config.js';
import { BERTH_VERSION } from '../src/version.js';
import { isRoot } from './helpers/paths.js';
import { run } from './helpers/processes.js';
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
