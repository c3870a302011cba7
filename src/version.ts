// berth's own version, read once from package.json so there is one place to bump it.
import { readFileSync } from 'node:fs';

function findPackageVersion(): string {
  // Compiled files live in dist/src/…; sources in src/…: walk up to the package root.
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'berth' && pkg.version) return pkg.version;
    } catch {
      // try the next level up
    }
  }
  return '0.0.0-unknown';
}

export const BERTH_VERSION = findPackageVersion();
export const RUNTIME_NAME = 'berth';
/** The CRI API version berth serves. */
export const RUNTIME_API_VERSION = 'v1';
/** The kubelet's runtime API version string that CRI runtimes answer in Version.version. */
export const KUBELET_API_VERSION = '0.1.0';
