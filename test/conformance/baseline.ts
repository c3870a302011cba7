// The critest specs berth has passed: a spec listed here that fails (or does not run in
// a full run) fails the harness, whatever containerd does with it, so a spec containerd
// 1.6 skips (image volumes, recursive read-only mounts, metrics…) is guarded too. The
// summary lists specs that pass and are not here yet: add them when they land.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** test/conformance/berth-passes.txt in the checkout (this file runs from dist/). */
export const BERTH_BASELINE_FILE = fileURLToPath(new URL('../../../test/conformance/berth-passes.txt', import.meta.url));

/** One spec name a line, as critest's report names it; blank lines and # comments ignored. */
export function readBerthBaseline(file = BERTH_BASELINE_FILE): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
}
