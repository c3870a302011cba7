// The CRI security-context fields that pods and containers share, checked and put in
// berth's terms before anything is created: the seccomp profile (the SecurityProfile
// message or the deprecated seccomp_profile_path string) and run_as_group's need of a user.
import { SecurityProfile_ProfileType, type Int64Value, type SecurityProfile } from '../gen/runtime/v1/api_pb.js';
import { invalidArgument } from '../errors.js';
import type { SeccompChoice } from '../container/seccomp.js';

/** The legacy seccomp_profile_path prefix of a profile file on the node. */
const LOCALHOST_PREFIX = 'localhost/';

/**
 * The seccomp profile a request asks for, as containerd reads it: the SecurityProfile
 * message when present, else the deprecated path ("runtime/default" and "docker/default"
 * are berth's default, "unconfined" none, "localhost/<absolute path>" a file on the node).
 * A request that names neither gets `whenEmpty`: unconfined, as the CRI defines it,
 * unless berthd is configured otherwise (seccomp_use_default_when_empty).
 */
export function seccompChoiceFrom(profile: SecurityProfile | undefined, legacyPath: string, whenEmpty: SeccompChoice): SeccompChoice {
  if (profile) {
    const type = profile.profileType;
    if (type !== SecurityProfile_ProfileType.Localhost && profile.localhostRef !== '') {
      throw invalidArgument(`seccomp: localhost_ref "${profile.localhostRef}" must only be set when profile_type is Localhost (it is ${SecurityProfile_ProfileType[type] ?? type})`);
    }
    switch (type) {
      case SecurityProfile_ProfileType.RuntimeDefault:
        return { type: 'runtime-default' };
      case SecurityProfile_ProfileType.Unconfined:
        return { type: 'unconfined' };
      case SecurityProfile_ProfileType.Localhost:
        // As containerd, a "localhost/" prefix is tolerated here too.
        return localhostProfile(trimPrefix(profile.localhostRef, LOCALHOST_PREFIX), 'seccomp localhost_ref');
      default:
        throw invalidArgument(`seccomp: unknown profile_type ${type} (want RuntimeDefault, Unconfined or Localhost)`);
    }
  }
  switch (legacyPath) {
    case '':
      return whenEmpty;
    case 'runtime/default':
    case 'docker/default':
      return { type: 'runtime-default' };
    case 'unconfined':
      return { type: 'unconfined' };
    default:
      if (!legacyPath.startsWith(LOCALHOST_PREFIX)) {
        throw invalidArgument(`seccomp_profile_path "${legacyPath}" is not valid: use runtime/default, docker/default, unconfined or localhost/<absolute path of a profile>`);
      }
      return localhostProfile(trimPrefix(legacyPath, LOCALHOST_PREFIX), `seccomp_profile_path "${legacyPath}"`);
  }
}

function trimPrefix(value: string, prefix: string): string {
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}

function localhostProfile(path: string, what: string): SeccompChoice {
  if (!path.startsWith('/')) throw invalidArgument(`${what}: the profile "${path}" must be an absolute path on the node`);
  return { type: 'localhost', path };
}

/** The CRI: run_as_group only with run_as_user or run_as_username, "otherwise, the runtime MUST error". */
export function checkRunAsGroup(runAsGroup: Int64Value | undefined, runAsUser: Int64Value | undefined, runAsUsername: string): void {
  if (runAsGroup && !runAsUser && !runAsUsername) {
    // containerd's words, with the fields that would satisfy it.
    throw invalidArgument(`user group is specified without user: run_as_group ${runAsGroup.value} needs run_as_user or run_as_username`);
  }
}
