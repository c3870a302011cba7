// kubernetes-csi's csi-sanity (csi-test v5.6.0, built from the Go module proxy by
// scripts/build-csi-sanity.sh) against a real berth-csi: every spec the driver's declared
// capabilities select must pass, for mount volumes (ext4, and XFS through the fsType
// parameter) and for block volumes. Specs skipped
// are those of capabilities berth-csi does not declare (ControllerPublish, ModifyVolume,
// group snapshots, volume health): the summary is printed as diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRoot, PACKAGE_ROOT } from './helpers/paths.js';
import { run } from './helpers/processes.js';
import { loopDevicesUnder, startBerthCsi } from './helpers/berth-csi.js';
import { mountsBelow, mountTable } from '../src/linux/mount-table.js';
import { filesystemTypeOf } from '../src/linux/loop-device.js';
import { VolumeCapability_AccessMode_Mode as Mode } from '../src/gen/csi/v1/csi_pb.js';

const skip = !isRoot ? 'needs root (loop devices and mounts)' : false;

/** Builds (or finds cached) csi-sanity; no Go is a failure, never a silent skip. */
async function csiSanityBinary(): Promise<string> {
  const built = await run('bash', [join(PACKAGE_ROOT, 'scripts/build-csi-sanity.sh')], { timeoutMs: 900_000 });
  assert.equal(built.code, 0, `scripts/build-csi-sanity.sh failed (is Go installed at /usr/local/go?):\n${built.stderr}`);
  return built.stdout.trim().split('\n').pop()!;
}

interface SpecReport {
  State: string;
  LeafNodeText: string;
  ContainerHierarchyTexts: string[] | null;
  Failure?: { Message: string };
}

const MiB = 1024 * 1024;
/**
 * The runs: mount volumes (ext4), block volumes, and mount volumes made XFS through the
 * fsType parameter (csi-sanity has no fs type flag; its capabilities name none). XFS
 * volumes are at least 300 MiB.
 */
const runs = [
  { label: 'mount volumes', accessType: 'mount', size: 64 * MiB, parameters: undefined },
  { label: 'block volumes', accessType: 'block', size: 64 * MiB, parameters: undefined },
  { label: 'mount volumes, xfs', accessType: 'mount', size: 300 * MiB, parameters: 'fsType: xfs\n' },
] as const;

for (const { label, accessType, size, parameters } of runs) {
  test(`csi-sanity v5.6.0 against berth-csi (${label})`, { skip, timeout: 900_000 }, async (t) => {
    const sanity = await csiSanityBinary();
    const csi = await startBerthCsi(t);
    const report = join(csi.dir, 'report.json');
    await mkdir(join(csi.dir, 'sanity'), { recursive: true });
    const parametersFile = join(csi.dir, 'parameters.yaml');
    if (parameters) {
      await writeFile(parametersFile, parameters);
      // What csi-sanity's volumes will be: the parameter makes XFS of a capability naming no fs type.
      const probe = await csi.controller.createVolume({
        name: 'fs-type-probe',
        capacityRange: { requiredBytes: BigInt(size) },
        volumeCapabilities: [{ accessType: { case: 'mount', value: {} }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } }],
        parameters: { fsType: 'xfs' },
      });
      assert.equal(await filesystemTypeOf(join(csi.stateDir, 'data', `${probe.volume!.volumeId}.img`)), 'xfs');
      await csi.controller.deleteVolume({ volumeId: probe.volume!.volumeId });
    }
    const result = await run(
      sanity,
      [
        `--csi.endpoint=${csi.endpoint}`,
        `--csi.mountdir=${join(csi.dir, 'sanity/target')}`,
        `--csi.stagingdir=${join(csi.dir, 'sanity/staging')}`,
        `--csi.testvolumesize=${size}`,
        `--csi.testvolumeexpandsize=${2 * size}`,
        `--csi.testvolumeaccesstype=${accessType}`,
        ...(parameters ? [`--csi.testvolumeparameters=${parametersFile}`] : []),
        `--ginkgo.json-report=${report}`,
        '--ginkgo.no-color',
      ],
      { timeoutMs: 600_000 },
    );
    const specs = (JSON.parse(await readFile(report, 'utf8')) as Array<{ SpecReports: SpecReport[] }>)[0]!.SpecReports.filter(
      (s) => s.LeafNodeText !== '',
    );
    const name = (s: SpecReport) => [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(' / ');
    const count = (state: string) => specs.filter((s) => s.State === state).length;
    t.diagnostic(`passed ${count('passed')}, failed ${count('failed')}, skipped ${count('skipped')}, pending ${count('pending')}`);
    const failed = specs.filter((s) => s.State !== 'passed' && s.State !== 'skipped' && s.State !== 'pending');
    for (const s of failed) t.diagnostic(`FAILED ${name(s)}: ${s.Failure?.Message.split('\n')[0]}`);
    assert.deepEqual(failed.map(name), [], `csi-sanity failures:\n${result.stdout.slice(-6000)}\nberth-csi log tail:\n${csi.logs().slice(-4000)}`);
    assert.equal(result.code, 0);
    assert.ok(count('passed') >= 60, `only ${count('passed')} specs passed`);
    // csi-sanity cleaned up after itself through the driver: nothing of it is left.
    assert.deepEqual(mountsBelow(await mountTable(), csi.dir), []);
    assert.deepEqual(loopDevicesUnder(csi.dir), []);
  });
}
