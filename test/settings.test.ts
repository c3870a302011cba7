// berthctl's endpoint, timeout and config-file precedence, as crictl does it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveSettings } from '../src/cli/settings.js';
import { formatDuration, parseDuration } from '../src/util/duration.js';
import { tempDir } from './helpers/tmp.js';

test('flag beats environment beats config file beats default', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'crictl.yaml');
  await writeFile(file, 'runtime-endpoint: unix:///from/file.sock\ntimeout: 7\n');
  const env = { CRI_CONFIG_FILE: file };
  assert.equal(resolveSettings({}, { CRI_CONFIG_FILE: '/dev/null' }).runtimeEndpoint, 'unix:///run/berth/berth.sock');
  assert.equal(resolveSettings({}, { CRI_CONFIG_FILE: '/dev/null' }).timeoutMs, 2000);
  assert.equal(resolveSettings({}, env).runtimeEndpoint, 'unix:///from/file.sock');
  assert.equal(resolveSettings({}, env).timeoutMs, 7000);
  assert.equal(resolveSettings({}, { ...env, CONTAINER_RUNTIME_ENDPOINT: 'unix:///from/env.sock' }).runtimeEndpoint, 'unix:///from/env.sock');
  assert.equal(
    resolveSettings({ runtimeEndpoint: '/from/flag.sock' }, { ...env, CONTAINER_RUNTIME_ENDPOINT: 'unix:///from/env.sock' }).runtimeEndpoint,
    'unix:///from/flag.sock',
  );
  assert.equal(resolveSettings({}, env).imageEndpoint, 'unix:///from/file.sock', 'image endpoint follows the runtime endpoint');
  assert.equal(resolveSettings({}, { ...env, IMAGE_SERVICE_ENDPOINT: 'unix:///img.sock' }).imageEndpoint, 'unix:///img.sock');
  assert.throws(() => resolveSettings({ config: join(dir, 'missing.yaml') }, {}), /cannot read config file/);
  assert.throws(() => resolveSettings({ runtimeEndpoint: 'tcp://1.2.3.4:5' }, {}), /not supported/);
});

test('durations are read as Go writes them', () => {
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('3'), 3000);
  assert.throws(() => parseDuration('soon'), /invalid duration/);
  assert.throws(() => parseDuration('2s later'), /invalid duration/);
  assert.equal(formatDuration(300_000), '5m0s');
  assert.equal(formatDuration(90_000), '1m30s');
  assert.equal(formatDuration(1500), '1.5s');
  assert.equal(formatDuration(20), '20ms');
});
