// The real crictl (cri-tools v1.37.0), built from the Go module proxy by
// scripts/build-cri-tools.sh and cached: the reference berthctl is compared with.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './paths.js';
import { run } from './processes.js';

/** Builds (or finds cached) crictl; no Go is a failure, never a silent skip. */
export async function crictlBinary(): Promise<string> {
  const built = await run('bash', [join(PACKAGE_ROOT, 'scripts/build-cri-tools.sh')], { timeoutMs: 900_000 });
  assert.equal(built.code, 0, `scripts/build-cri-tools.sh failed (crictl is needed; is Go installed at /usr/local/go?):\n${built.stderr}`);
  return join(built.stdout.trim().split('\n').pop()!, 'crictl');
}
