// Where the built programs are, for tests that run them as a user would.
import { fileURLToPath } from 'node:url';

/** The package root (tests run from dist/test/…). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BERTHD = fileURLToPath(new URL('../../src/bin/berthd.js', import.meta.url));
export const BERTHCTL = fileURLToPath(new URL('../../src/bin/berthctl.js', import.meta.url));
/** The shared reference specs beside the checkout, when present. */
export const REFERENCE_DIR = fileURLToPath(new URL('../../../../shared/reference/', import.meta.url));

export const isRoot = process.getuid?.() === 0;
export const BERTH_CSI = fileURLToPath(new URL('../../src/bin/berth-csi.js', import.meta.url));
