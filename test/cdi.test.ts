// CDI devices: spec files (JSON and YAML, several cdiVersions) from berthd's
// cdi_spec_dirs, the spec's and the device's containerEdits applied (device node with its
// cgroup rule, env, mount, hook), asked for by the CRI field or a cdi.k8s.io annotation;
// an unknown device is InvalidArgument naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import { applyCdiEdits, cdiEditsFor, loadCdiRegistry, parseCdiSpec, requestedCdiDevices, type OciConfigForCdi } from '../src/container/cdi.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { tempDir } from './helpers/tmp.js';

test('CDI specs parse from JSON and YAML; bad ones say what is wrong', () => {
  const json = parseCdiSpec(JSON.stringify({ cdiVersion: '0.3.0', kind: 'example.com/gpu', devices: [{ name: 'g0', containerEdits: { env: ['A=1'] } }] }), '/x/a.json');
  assert.equal(json.devices[0]!.name, 'g0');
  const yaml = parseCdiSpec('cdiVersion: "0.8.0"\nkind: example.com/nic\ncontainerEdits:\n  env: ["B=2"]\ndevices:\n  - name: n0\n    containerEdits:\n      mounts:\n        - hostPath: /h\n          containerPath: /c\n          options: [ro]\n', '/x/b.yaml');
  assert.deepEqual(yaml.containerEdits?.env, ['B=2']);
  assert.deepEqual(yaml.devices[0]!.containerEdits.mounts, [{ hostPath: '/h', containerPath: '/c', options: ['ro'], type: undefined }]);
  assert.throws(() => parseCdiSpec('{"cdiVersion":"0.9.0","kind":"a.com/b","devices":[{"name":"x"}]}', '/x/c.json'), /cdiVersion "0.9.0" is not supported/);
  assert.throws(() => parseCdiSpec('{"cdiVersion":"0.5.0","kind":"nokind","devices":[{"name":"x"}]}', '/x/c.json'), /kind "nokind"/);
  assert.throws(() => parseCdiSpec('{"cdiVersion":"0.5.0","kind":"a.com/b","devices":[{"name":"x","containerEdits":{"hooks":[{"hookName":"later","path":"/bin/true"}]}}]}', '/x/c.json'), /hookName "later"/);
  assert.throws(() => requestedCdiDevices(['gpu0'], {}), /not a qualified name/);
  assert.deepEqual(requestedCdiDevices(['a.com/b=x'], { 'cdi.k8s.io/one': 'a.com/b=y, a.com/b=x', other: 'a.com/b=z' }), ['a.com/b=x', 'a.com/b=y']);
  // Applying: env replaced by name, mounts default to binds, hooks per point.
  const oci: OciConfigForCdi = { process: { env: ['A=0', 'P=1'], user: {} }, mounts: [], linux: { devices: [], resources: { devices: [] } } };
  applyCdiEdits(oci, [{ env: ['A=1'], mounts: [{ hostPath: '/h', containerPath: '/c' }], hooks: [{ hookName: 'poststop', path: '/bin/true' }], additionalGids: [44] }], []);
  assert.deepEqual(oci.process.env, ['P=1', 'A=1']);
  assert.deepEqual(oci.mounts, [{ destination: '/c', type: 'bind', source: '/h', options: ['bind'] }]);
  assert.deepEqual(oci.hooks, { poststop: [{ path: '/bin/true' }] });
  assert.deepEqual(oci.process.user.additionalGids, [44]);
});

test('a later spec dir wins for the same device; an unknown device names itself and the unreadable specs', async (t) => {
  const dir = await tempDir(t, 'cdi-unit-');
  await mkdir(join(dir, 'etc'));
  await mkdir(join(dir, 'run'));
  await writeFile(join(dir, 'etc', 'v.json'), JSON.stringify({ cdiVersion: '0.4.0', kind: 'v.com/c', devices: [{ name: 'd', containerEdits: { env: ['FROM=etc'] } }] }));
  await writeFile(join(dir, 'run', 'v.yaml'), 'cdiVersion: 0.6.0\nkind: v.com/c\ndevices:\n- name: d\n  containerEdits:\n    env: [FROM=run]\n');
  await writeFile(join(dir, 'run', 'broken.yaml'), 'cdiVersion: [');
  const registry = await loadCdiRegistry([join(dir, 'etc'), join(dir, 'run'), join(dir, 'missing')]);
  assert.deepEqual(cdiEditsFor(registry, ['v.com/c=d']), [{}, { env: ['FROM=run'] }]);
  assert.throws(() => cdiEditsFor(registry, ['v.com/c=nope']), (err: Error & { code?: string }) => /unresolvable CDI device v\.com\/c=nope/.test(err.message) && /broken\.yaml/.test(err.message));
});

test('a container gets its CDI devices: node, env, mount and hook, by field or annotation', { skip: containerTestSkip }, async (t) => {
  const dir = await tempDir(t, 'cdi-');
  const [etc, run, data] = [join(dir, 'etc'), join(dir, 'run'), join(dir, 'data')];
  for (const d of [etc, run, data]) await mkdir(d);
  await writeFile(join(data, 'firmware'), 'cdi firmware\n');
  // A device node of the test's own: /dev/null's numbers under another name.
  const node = join(dir, 'berth-cdi-null');
  assert.equal(spawnSync('mknod', [node, 'c', '1', '3']).status, 0);
  const hookOut = join(dir, 'hook-ran');
  await writeFile(
    join(etc, 'vendor.json'),
    JSON.stringify({
      cdiVersion: '0.3.0',
      kind: 'berth.test/dev',
      containerEdits: { env: ['CDI_SPEC=vendor'] },
      devices: [
        {
          name: 'd0',
          containerEdits: {
            deviceNodes: [{ path: '/dev/cdi-d0', hostPath: node, permissions: 'rw' }],
            env: ['CDI_DEVICE=d0'],
            hooks: [{ hookName: 'createRuntime', path: '/bin/sh', args: ['sh', '-c', `echo hooked > ${hookOut}`] }],
          },
        },
      ],
    }),
  );
  await writeFile(join(run, 'other.yaml'), `cdiVersion: "0.7.0"\nkind: berth.test/fw\ndevices:\n  - name: blob\n    containerEdits:\n      mounts:\n        - hostPath: ${data}\n          containerPath: /opt/fw\n          options: [ro, rbind]\n      env: [CDI_FW=yes]\n`);
  const { runtime, image, podId } = await setupContainerTest(t, `cdi_spec_dirs = ["${etc}", "${run}"]`);
  const exec = async (containerId: string, cmd: string[]) => {
    const r = await runtime.execSync({ containerId, cmd, timeout: 10n });
    assert.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
    return Buffer.from(r.stdout).toString();
  };
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'cdi' }, image: { image }, command: ['sleep', '600'], CDIDevices: [{ name: 'berth.test/dev=d0' }], annotations: { 'cdi.k8s.io/fw': 'berth.test/fw=blob' } },
  });
  assert.equal((await readFile(hookOut, 'utf8')).trim(), 'hooked', 'the createRuntime hook ran');
  await runtime.startContainer({ containerId });
  assert.equal((await exec(containerId, ['stat', '-c', '%F %t:%T', '/dev/cdi-d0'])).trim(), 'character special file 1:3');
  // The cgroup rule lets it be opened (rw), as the spec's permissions say.
  await exec(containerId, ['sh', '-c', 'echo x > /dev/cdi-d0']);
  const env = await exec(containerId, ['env']);
  for (const v of ['CDI_SPEC=vendor', 'CDI_DEVICE=d0', 'CDI_FW=yes']) assert.ok(env.includes(v), `${v} in ${env}`);
  assert.equal(await exec(containerId, ['cat', '/opt/fw/firmware']), 'cdi firmware\n');
  assert.notEqual((await runtime.execSync({ containerId, cmd: ['touch', '/opt/fw/x'], timeout: 10n })).exitCode, 0, 'the ro option holds');

  const invalid = (name: RegExp) => (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && name.test(err.message);
  await assert.rejects(runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'cdi-unknown' }, image: { image }, CDIDevices: [{ name: 'berth.test/dev=nope' }] } }), invalid(/unresolvable CDI device berth\.test\/dev=nope/));
  await assert.rejects(runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'cdi-bad' }, image: { image }, annotations: { 'cdi.k8s.io/x': 'justaname' } } }), invalid(/not a qualified name/));
  // The name is free again after a refusal.
  const again = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'cdi-unknown' }, image: { image }, command: ['true'] } });
  assert.ok(again.containerId);
});
