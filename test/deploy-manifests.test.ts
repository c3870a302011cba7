// deploy/berth-csi/: the manifests parse as YAML, every object has its kind and name, and
// the names that must agree with berth-csi do: the driver name (GetPluginInfo's), the
// plugin dir its socket lives in, the service accounts the pods run as. (The manifests
// are not applied to a cluster here.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DRIVER_NAME } from '../src/csi/translate.js';
import { PACKAGE_ROOT } from './helpers/paths.js';

interface Manifest {
  file: string;
  kind: string;
  name: string;
  body: Record<string, any>;
}

async function manifests(): Promise<Manifest[]> {
  const dir = join(PACKAGE_ROOT, 'deploy/berth-csi');
  const all: Manifest[] = [];
  for (const file of (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
      assert.deepEqual(doc.errors.map((e) => e.message), [], `${file}: YAML errors`);
      const body = doc.toJS() as Record<string, any> | null;
      if (body === null) continue;
      assert.ok(body.apiVersion && body.kind && body.metadata?.name, `${file}: an object without apiVersion, kind or metadata.name`);
      all.push({ file, kind: body.kind, name: body.metadata.name, body });
    }
  }
  return all;
}

test('deploy/berth-csi manifests: valid YAML whose driver name, plugin dir and service accounts agree with berth-csi', async () => {
  const all = await manifests();
  assert.ok(all.length > 0);
  const of = (kind: string) => all.filter((m) => m.kind === kind);
  for (const m of of('CSIDriver')) assert.equal(m.name, DRIVER_NAME, `${m.file}: CSIDriver name`);
  for (const m of of('StorageClass')) assert.equal(m.body.provisioner, DRIVER_NAME, `${m.file}: ${m.name} provisioner`);
  for (const m of of('VolumeSnapshotClass')) assert.equal(m.body.driver, DRIVER_NAME, `${m.file}: ${m.name} driver`);
  for (const m of of('StorageClass')) {
    const fsType = m.body.parameters?.['csi.storage.k8s.io/fstype'];
    assert.ok(fsType === undefined || ['ext4', 'xfs'].includes(fsType), `${m.file}: ${m.name} fstype ${fsType} is not one berth-csi formats`);
  }
  const accounts = new Set(of('ServiceAccount').map((m) => `${m.body.metadata.namespace ?? 'default'}/${m.name}`));
  const pluginDir = `/var/lib/kubelet/plugins/${DRIVER_NAME}`;
  for (const m of [...of('DaemonSet'), ...of('Deployment')]) {
    const spec = m.body.spec.template.spec;
    assert.deepEqual(m.body.spec.selector.matchLabels, Object.fromEntries(Object.entries(m.body.spec.template.metadata.labels).filter(([k]) => k in m.body.spec.selector.matchLabels)), `${m.file}: selector matches the pod labels`);
    if (spec.serviceAccountName && accounts.size > 0) {
      assert.ok(accounts.has(`${m.body.metadata.namespace ?? 'default'}/${spec.serviceAccountName}`), `${m.file}: service account ${spec.serviceAccountName} is not defined`);
    }
    const volumes = new Map<string, any>((spec.volumes ?? []).map((v: any) => [v.name, v]));
    for (const v of volumes.values()) {
      if (v.hostPath?.path?.includes('/kubelet/plugins/')) assert.equal(v.hostPath.path, pluginDir, `${m.file}: plugin dir`);
    }
    for (const c of spec.containers) {
      for (const mount of c.volumeMounts ?? []) assert.ok(volumes.has(mount.name), `${m.file}: ${c.name} mounts undefined volume ${mount.name}`);
      for (const arg of (c.args ?? []) as string[]) {
        const socket = /^--(?:csi-address|endpoint)=(?:unix:\/\/)?(.+)$/.exec(arg)?.[1];
        if (!socket) continue;
        // The socket's directory is a mount of the plugin dir in this container.
        const dir = socket.slice(0, socket.lastIndexOf('/'));
        const mount = (c.volumeMounts ?? []).find((vm: any) => vm.mountPath === dir);
        assert.ok(mount, `${m.file}: ${c.name}'s socket ${socket} is not in a mounted dir`);
        assert.equal(volumes.get(mount.name)?.hostPath?.path, pluginDir, `${m.file}: ${c.name}'s socket dir is not the plugin dir`);
      }
      const registration = ((c.args ?? []) as string[]).find((a) => a.startsWith('--kubelet-registration-path='));
      if (registration) assert.equal(registration.split('=')[1], `${pluginDir}/csi.sock`, `${m.file}: registration path`);
    }
  }
});
