// CNI results: checking what a plugin printed and converting between spec versions.
// 0.3.0 to 1.1.0 share one shape for what berth reads (interfaces, ips[].address,
// routes, dns); they differ only in `ips[].version` ("4"/"6"), which 0.3.x/0.4.0 require
// and 1.0.0 removed. The 0.1.0/0.2.0 shape (`ip4`/`ip6`) is not supported.
import { compareVersions, isSupportedVersion } from './cni-config.js';

export interface CniResult {
  cniVersion: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string; mtu?: number }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number }>;
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

/**
 * Parses a plugin's ADD output into a result of `version`. Unknown fields are kept
 * (the next plugin's prevResult must carry everything the last one said).
 */
export function parseResult(stdout: string, version: string, plugin: string): CniResult {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`plugin ${plugin} printed a result that is not JSON (${(err as Error).message}): ${excerpt(stdout)}`);
  }
  return checkResult(doc, version, `plugin ${plugin}'s result`);
}

/** Validates a result object (from a plugin or the cache) and converts it to `version`. */
export function checkResult(doc: unknown, version: string, what: string): CniResult {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${what} is not a JSON object`);
  const result = doc as Record<string, unknown>;
  if ('ip4' in result || 'ip6' in result) throw new Error(`${what} is in the CNI 0.2.0 format, which berth does not support`);
  const from = typeof result.cniVersion === 'string' && result.cniVersion !== '' ? result.cniVersion : version;
  if (!isSupportedVersion(from)) throw new Error(`${what} has cniVersion ${JSON.stringify(result.cniVersion)}, which berth does not support`);
  if (result.interfaces !== undefined) {
    if (!Array.isArray(result.interfaces) || result.interfaces.some((i) => typeof i !== 'object' || i === null || typeof (i as { name?: unknown }).name !== 'string')) {
      throw new Error(`${what} has malformed "interfaces"`);
    }
  }
  if (result.ips !== undefined) {
    if (!Array.isArray(result.ips) || result.ips.some((i) => typeof i !== 'object' || i === null || typeof (i as { address?: unknown }).address !== 'string')) {
      throw new Error(`${what} has malformed "ips"`);
    }
  }
  if (result.routes !== undefined && !Array.isArray(result.routes)) throw new Error(`${what} has malformed "routes"`);
  return convertResult(result as unknown as CniResult, version);
}

/** The same result in another (supported, >= 0.3.0) spec version. Returns a copy. */
export function convertResult(result: CniResult, version: string): CniResult {
  const copy = structuredClone(result) as CniResult & { ips?: Array<{ address: string; version?: string }> };
  copy.cniVersion = version;
  if (copy.ips) {
    const wantsIpVersion = compareVersions(version, '1.0.0') < 0;
    for (const ip of copy.ips) {
      if (wantsIpVersion) ip.version ??= ip.address.includes(':') ? '6' : '4';
      else delete ip.version;
    }
  }
  return copy;
}

function excerpt(text: string): string {
  const trimmed = text.trim();
  return trimmed.length > 200 ? `${trimmed.slice(0, 200)}…` : trimmed || '(nothing)';
}
