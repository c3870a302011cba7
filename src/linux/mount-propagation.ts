// Mount propagation of CRI bind mounts. A mount made under a bidirectional (rshared)
// mount's source or destination reaches the other side only when the container's copy
// of the source stays in the host's peer group: the source must be on a shared mount,
// and the container's root must be made rshared rather than runc's default rslave (which
// would make the copy a slave, so the container's own mounts would go nowhere).
// Host-to-container (rslave) needs a source that receives propagation at all: on a
// shared or slave mount. containerd checks the same and words its refusals so.
import { realpath } from 'node:fs/promises';
import { failedPrecondition } from '../errors.js';
import { mountOf, mountTable } from './mount-table.js';

export type Propagation = 'private' | 'rslave' | 'rshared';

/**
 * Refuses a source whose mount cannot give the asked propagation. A source that does
 * not exist is left for the runtime to report.
 */
export async function checkPropagationSource(hostPath: string, propagation: Propagation): Promise<void> {
  if (propagation === 'private') return;
  const path = await realpath(hostPath).catch(() => undefined);
  if (!path) return;
  const mount = mountOf(await mountTable(), path);
  if (!mount) return;
  const shared = mount.optional.some((o) => o.startsWith('shared:'));
  const slave = mount.optional.some((o) => o.startsWith('master:'));
  if (propagation === 'rshared' && !shared) {
    throw failedPrecondition(`path "${hostPath}" is mounted on "${mount.point}" but it is not a shared mount`);
  }
  if (propagation === 'rslave' && !shared && !slave) {
    throw failedPrecondition(`path "${hostPath}" is mounted on "${mount.point}" but it is not a shared or slave mount`);
  }
}

/**
 * The OCI linux.rootfsPropagation a container's mounts need: rshared for any
 * bidirectional mount, rslave for any host-to-container one (runc's own default, said
 * explicitly as containerd does), none otherwise.
 */
export function rootfsPropagationFor(propagations: Propagation[]): 'rshared' | 'rslave' | undefined {
  if (propagations.includes('rshared')) return 'rshared';
  if (propagations.includes('rslave')) return 'rslave';
  return undefined;
}
