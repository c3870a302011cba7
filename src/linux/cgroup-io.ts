// Block I/O of a cgroup per device, as cAdvisor reads it: cgroup v1's
// blkio.throttle.io_service_bytes / io_serviced (every bio the cgroup issued, whatever
// the scheduler), or v2's io.stat. Device names come from /sys/dev/block.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupHierarchies, readCgroupFile } from './cgroups.js';
import { cgroupDir } from './cgroup-names.js';

export interface DeviceIo {
  major: number;
  minor: number;
  /** /dev/<name> when sysfs knows the device, else "major:minor". */
  device: string;
  readBytes: number;
  writeBytes: number;
  reads: number;
  writes: number;
  /** Bytes per operation as the kernel names them (v1: Read, Write, Sync, Async, Discard, Total; v2: Read, Write, Discard). */
  bytesByOperation: Record<string, number>;
}

type Partial = Omit<DeviceIo, 'device'>;

const key = (major: number, minor: number) => `${major}:${minor}`;

function entry(map: Map<string, Partial>, major: number, minor: number): Partial {
  const k = key(major, minor);
  let e = map.get(k);
  if (!e) {
    e = { major, minor, readBytes: 0, writeBytes: 0, reads: 0, writes: 0, bytesByOperation: {} };
    map.set(k, e);
  }
  return e;
}

/** cgroup v1: `M:m Op N` lines of io_service_bytes and io_serviced (the closing `Total N` line is skipped). */
export function parseV1Blkio(serviceBytes: string, serviced: string): Partial[] {
  const devices = new Map<string, Partial>();
  for (const [text, counts] of [
    [serviceBytes, false],
    [serviced, true],
  ] as const) {
    for (const line of text.split('\n')) {
      const m = /^(\d+):(\d+)\s+(\w+)\s+(\d+)$/.exec(line.trim());
      if (!m) continue;
      const e = entry(devices, Number(m[1]), Number(m[2]));
      const op = m[3]!;
      const n = Number(m[4]);
      if (counts) {
        if (op === 'Read') e.reads = n;
        if (op === 'Write') e.writes = n;
      } else {
        e.bytesByOperation[op] = n;
        if (op === 'Read') e.readBytes = n;
        if (op === 'Write') e.writeBytes = n;
      }
    }
  }
  return [...devices.values()];
}

/** cgroup v2: `M:m rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` lines. */
export function parseIoStat(text: string): Partial[] {
  const devices = new Map<string, Partial>();
  for (const line of text.split('\n')) {
    const [dev, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const e = entry(devices, Number(m[1]), Number(m[2]));
    const f = new Map(fields.map((p) => p.split('=') as [string, string]).map(([k, v]) => [k, Number(v)]));
    e.readBytes = f.get('rbytes') ?? 0;
    e.writeBytes = f.get('wbytes') ?? 0;
    e.reads = f.get('rios') ?? 0;
    e.writes = f.get('wios') ?? 0;
    e.bytesByOperation = { Read: e.readBytes, Write: e.writeBytes, Discard: f.get('dbytes') ?? 0 };
  }
  return [...devices.values()];
}

const deviceNames = new Map<string, string>();

/** /dev/<name> of a block device from its sysfs uevent (cached: names do not change while it exists). */
export async function blockDeviceName(major: number, minor: number): Promise<string> {
  const k = key(major, minor);
  const known = deviceNames.get(k);
  if (known) return known;
  const uevent = await readFile(`/sys/dev/block/${k}/uevent`, 'utf8').catch(() => '');
  const name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
  const device = name ? `/dev/${name}` : k;
  deviceNames.set(k, device);
  return device;
}

const read = (file: string) => readCgroupFile(file) ?? '';

/** The per-device I/O of the cgroup at `path` (relative to each hierarchy); [] when it has none. */
export async function cgroupIo(cgroupsPath: string): Promise<DeviceIo[]> {
  const path = cgroupDir(cgroupsPath);
  const hierarchies = await cgroupHierarchies();
  const blkio = hierarchies.find((h) => h.version === 1 && h.controllers.includes('blkio'));
  let parsed: Partial[];
  if (blkio) {
    const dir = join(blkio.mount, path);
    parsed = parseV1Blkio(read(join(dir, 'blkio.throttle.io_service_bytes')), read(join(dir, 'blkio.throttle.io_serviced')));
  } else {
    const unified = hierarchies.find((h) => h.version === 2);
    parsed = unified ? parseIoStat(read(join(unified.mount, path, 'io.stat'))) : [];
  }
  return Promise.all(parsed.map(async (p) => ({ ...p, device: await blockDeviceName(p.major, p.minor) })));
}
