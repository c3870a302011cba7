// Image references as the kubelet and crictl write them, normalised as Docker does:
// `busybox` → docker.io/library/busybox:latest, `host:port/repo:tag`, `repo@sha256:…`,
// `repo:tag@sha256:…`.
import { invalidArgument } from '../errors.js';

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

export interface ImageReference {
  /** Registry host, with port when given: "docker.io", "127.0.0.1:5000". */
  domain: string;
  /** Repository path inside the registry: "library/busybox". */
  path: string;
  tag?: string;
  digest?: string;
}

const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainPart = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
export const digestPattern = /^sha256:[a-f0-9]{64}$/;
const anyDigestPattern = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

/** Parses and normalises a reference; a missing tag and digest means tag "latest". */
export function parseReference(input: string): ImageReference {
  const text = input.trim();
  if (text === '') throw invalidArgument('image reference is empty');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!anyDigestPattern.test(digest)) throw invalidArgument(`invalid image reference "${input}": bad digest "${digest}"`);
    if (!digestPattern.test(digest)) throw invalidArgument(`invalid image reference "${input}": only sha256 digests are supported`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!tagPattern.test(tag)) throw invalidArgument(`invalid image reference "${input}": bad tag "${tag}"`);
  }
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      domain = first;
      path = rest.slice(firstSlash + 1);
    }
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (!domainPart.test(domain)) throw invalidArgument(`invalid image reference "${input}": bad registry host "${domain}"`);
  if (path === '') throw invalidArgument(`invalid image reference "${input}": no repository name`);
  if (path !== path.toLowerCase()) throw invalidArgument(`invalid image reference "${input}": repository name must be lowercase`);
  for (const component of path.split('/')) {
    if (!pathComponent.test(component)) throw invalidArgument(`invalid image reference "${input}": bad repository name component "${component}"`);
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { domain, path, tag, digest };
}

/** "docker.io/library/busybox" */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised reference: name[:tag][@digest]. */
export function formatReference(ref: ImageReference): string {
  return repositoryName(ref) + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

/** "docker.io/library/busybox:latest", or undefined when the reference has no tag. */
export function tagReference(ref: ImageReference): string | undefined {
  return ref.tag !== undefined ? `${repositoryName(ref)}:${ref.tag}` : undefined;
}

export function digestReference(ref: ImageReference, digest: string): string {
  return `${repositoryName(ref)}@${digest}`;
}
